//go:build !race

package elf

const raceEnabled = false
