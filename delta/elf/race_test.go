//go:build race

package elf

// raceEnabled: the race detector makes the exhaustive sweeps slow.
const raceEnabled = true
