// Package stats holds the few statistics the benchmark programs share, so
// that every figure in bench/results.md is a median computed one way.
package stats

import "slices"

// Median is the middle value of xs (the mean of the two middle ones for an
// even count); 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
