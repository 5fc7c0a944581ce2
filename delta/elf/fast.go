package elf

import "golang.org/x/arch/x86/x86asm"

// The instruction sweep is most of what the ELF codecs cost a client, and
// x86asm.Decode, which finds the opcode by a linear search of its tables,
// most of the sweep. fastLen decodes the few instruction forms that make
// up most of compiled x86-64 code (a REX prefix, then a one- or two-byte
// opcode with a ModRM operand and at most an immediate, or a branch) and
// leaves every other byte sequence to x86asm. It must give exactly what
// x86asm gives, since deltas were made against x86asm's sweep: TestFastLen
// compares the two at every byte offset of real executables and random
// bytes.

// Operand forms of the opcodes fastLen takes, by opcode byte: oneByte,
// and twoByte after 0x0f.
const (
	opNone    = iota // not taken
	opModRM          // ModRM (and SIB, displacement)
	opModRM8         // ModRM, then a 1-byte immediate
	opModRM32        // ModRM, then a 4-byte immediate
	opMem            // ModRM naming memory (lea)
	opRel32          // a 4-byte PC-relative immediate, no REX
	opRel8           // a 1-byte PC-relative immediate, no REX
	opOne            // the opcode alone, no REX
	opImm32          // a 4-byte immediate, no REX

	regZero = 0x80 // flag: ModRM's reg field must be 0 (C6 /0, C7 /0, 0F 1F /0)
	noREX   = 0x40 // flag: not after a REX prefix (x86asm refuses REX 0F 1F)
	flags   = regZero | noREX
)

var oneByte, twoByte [256]uint8

func init() {
	for _, op := range []byte{0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0a, 0x0b, 0x20, 0x21, 0x22, 0x23,
		0x28, 0x29, 0x2a, 0x2b, 0x30, 0x31, 0x32, 0x33, 0x38, 0x39, 0x3a, 0x3b, 0x84, 0x85, 0x88, 0x89, 0x8a, 0x8b} {
		oneByte[op] = opModRM
	}
	oneByte[0x8d] = opMem
	oneByte[0x83] = opModRM8
	oneByte[0x6b] = opModRM8
	oneByte[0xc6] = opModRM8 | regZero
	oneByte[0x81] = opModRM32
	oneByte[0x69] = opModRM32
	oneByte[0xc7] = opModRM32 | regZero
	oneByte[0xe8] = opRel32
	oneByte[0xe9] = opRel32
	oneByte[0xeb] = opRel8
	for op := 0x70; op <= 0x7f; op++ {
		oneByte[op] = opRel8 // jcc rel8
	}
	for op := 0x50; op <= 0x5f; op++ {
		oneByte[op] = opOne // push, pop
	}
	for _, op := range []byte{0x90, 0xc3, 0xcc} {
		oneByte[op] = opOne // nop, ret, int3
	}
	for op := 0xb8; op <= 0xbf; op++ {
		oneByte[op] = opImm32 // mov r32, imm32
	}
	for op := 0x40; op <= 0x4f; op++ {
		twoByte[op] = opModRM // cmovcc
	}
	for _, op := range []byte{0x10, 0x11, 0xb6, 0xb7, 0xbe, 0xbf, 0xaf} {
		twoByte[op] = opModRM // movups, movzx, movsx, imul
	}
	twoByte[0x1f] = opModRM | regZero | noREX // nop r/m
	for op := 0x80; op <= 0x8f; op++ {
		twoByte[op] = opRel32 // jcc rel32
	}
}

// decodeLen returns the length of the instruction at win[0] (1 for bytes
// that do not decode) and the offset of its 4-byte PC-relative operand
// (-1: none), as x86asm.Decode tells them.
func decodeLen(win []byte) (n, pcrel int) {
	if n, pcrel, ok := fastLen(win); ok {
		return n, pcrel
	}
	return asmLen(win)
}

// asmLen is decodeLen by x86asm alone: the reference fastLen must agree
// with, since deltas already published were made with it.
func asmLen(win []byte) (n, pcrel int) {
	inst, err := x86asm.Decode(win, 64)
	if err != nil || inst.Len == 0 {
		return 1, -1
	}
	if inst.PCRel != 4 {
		return inst.Len, -1
	}
	return inst.Len, inst.PCRelOff
}

// fastLen is decodeLen for the forms it knows (ok false: ask x86asm).
func fastLen(win []byte) (n, pcrel int, ok bool) {
	p, rex := 0, false
	if len(win) > 0 && win[0]&0xf0 == 0x40 {
		p, rex = 1, true
	}
	if p >= len(win) {
		return 0, 0, false
	}
	form := oneByte[win[p]]
	if win[p] == 0x0f {
		if p++; p >= len(win) {
			return 0, 0, false
		}
		form = twoByte[win[p]]
	}
	p++
	if rex && form&noREX != 0 {
		return 0, 0, false
	}
	switch form &^ flags {
	case opRel32, opRel8, opOne, opImm32:
		n := p + [...]int{opRel32: 4, opRel8: 1, opOne: 0, opImm32: 4}[form]
		if rex || n > len(win) {
			return 0, 0, false
		}
		if form == opRel32 {
			return n, p, true
		}
		return n, -1, true
	case opModRM, opModRM8, opModRM32, opMem:
		if p >= len(win) || (form == opMem && win[p]>>6 == 3) || (form&regZero != 0 && win[p]>>3&7 != 0) {
			return 0, 0, false
		}
		n, pcrel, ok := modRM(win, p)
		n += [...]int{opModRM: 0, opModRM8: 1, opModRM32: 4, opMem: 0}[form&^flags]
		if !ok || n > len(win) {
			return 0, 0, false
		}
		return n, pcrel, true
	}
	return 0, 0, false
}

// modRM returns where the operand starting at win[p] (ModRM, then any SIB
// and displacement) ends, and the offset of a RIP-relative displacement.
func modRM(win []byte, p int) (end, pcrel int, ok bool) {
	if p >= len(win) {
		return 0, 0, false
	}
	m := win[p]
	mod, rm := m>>6, m&7
	p++
	pcrel = -1
	switch {
	case mod == 3:
		return p, -1, true
	case rm == 4: // SIB
		if p >= len(win) {
			return 0, 0, false
		}
		base := win[p] & 7
		p++
		switch {
		case mod == 0 && base == 5:
			p += 4
		case mod == 1:
			p++
		case mod == 2:
			p += 4
		}
	case mod == 0 && rm == 5:
		pcrel = p
		p += 4
	case mod == 1:
		p++
	case mod == 2:
		p += 4
	}
	return p, pcrel, true
}
