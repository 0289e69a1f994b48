package sandbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The external host's VLANs without kernel VLAN support.
//
// The kernels these sandboxes run on are built without 802.1Q
// (CONFIG_VLAN_8021Q is off and there are no modules to load): `ip link add
// link eth0 type vlan` fails with "Unknown device type". Bridge VLAN
// filtering and tc's vlan action are missing too. What is there is eBPF with
// tc's bpf classifier, whose programs can pop and push a VLAN tag and
// redirect a frame to another device. So VLAN v of the external host is a
// veth pair in its namespace, eth0.<v> (where addresses go, named like the
// 802.1Q subinterface it stands in for) and v<v> (the VLAN's "wire"), and
// two programs of a dozen instructions each:
//
//   - on eth0's ingress: a frame tagged v has its tag popped and is sent
//     out of v<v>, so it arrives on eth0.<v> untagged;
//   - on v<v>'s ingress (what eth0.<v> sends): the frame is tagged v and
//     sent out of eth0 into the datacenter segment.
//
// Frames with other tags fall through to eth0, whose stack drops them (a
// tagged frame is never for an untagged interface). The programs are
// attached by netlink and go away with the devices, so the namespace's
// deletion cleans them up like everything else; no process runs.

// __sk_buff field offsets (include/uapi/linux/bpf.h, stable ABI).
const (
	skbVLANPresent = 20
	skbVLANTCI     = 24
)

// BPF helper ids (enum bpf_func_id) and tc verdicts (include/uapi/linux/pkt_cls.h).
const (
	helperSkbVLANPush = 18
	helperSkbVLANPop  = 19
	helperRedirect    = 23

	tcActUnspec = -1 // next filter
	tcActShot   = 2  // drop
)

// bpfInsn is struct bpf_insn: opcode, dst_reg (low nibble) and src_reg
// (high nibble), offset, immediate. Its Go layout matches the C one.
type bpfInsn struct {
	code uint8
	regs uint8
	off  int16
	imm  int32
}

// A tiny assembler: enough instructions for the two programs, with jumps
// to named labels resolved by assemble.
type bpfAsm struct {
	insns  []bpfInsn
	labels map[string]int
	jumps  map[int]string
}

func (a *bpfAsm) emit(code, dst, src uint8, off int16, imm int32) {
	a.insns = append(a.insns, bpfInsn{code: code, regs: src<<4 | dst, off: off, imm: imm})
}

func (a *bpfAsm) movReg(dst, src uint8)             { a.emit(0xbf, dst, src, 0, 0) }   // BPF_ALU64|BPF_MOV|BPF_X
func (a *bpfAsm) movImm(dst uint8, imm int32)       { a.emit(0xb7, dst, 0, 0, imm) }   // BPF_ALU64|BPF_MOV|BPF_K
func (a *bpfAsm) andImm(dst uint8, imm int32)       { a.emit(0x57, dst, 0, 0, imm) }   // BPF_ALU64|BPF_AND|BPF_K
func (a *bpfAsm) loadU32(dst, src uint8, off int16) { a.emit(0x61, dst, src, off, 0) } // BPF_LDX|BPF_MEM|BPF_W
func (a *bpfAsm) call(helper int32)                 { a.emit(0x85, 0, 0, 0, helper) }  // BPF_JMP|BPF_CALL
func (a *bpfAsm) exit()                             { a.emit(0x95, 0, 0, 0, 0) }       // BPF_JMP|BPF_EXIT

// jumpIf emits "if dst <op> imm goto label"; op is 0x15 (BPF_JEQ|BPF_K) or
// 0x55 (BPF_JNE|BPF_K) under BPF_JMP.
func (a *bpfAsm) jumpIf(op, dst uint8, imm int32, label string) {
	if a.jumps == nil {
		a.jumps = map[int]string{}
	}
	a.jumps[len(a.insns)] = label
	a.emit(op, dst, 0, 0, imm)
}

func (a *bpfAsm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.insns)
}

func (a *bpfAsm) assemble() []bpfInsn {
	for at, name := range a.jumps {
		target, ok := a.labels[name]
		if !ok {
			panic("bpf: no label " + name)
		}
		// Offsets count from the instruction after the jump.
		a.insns[at].off = int16(target - at - 1)
	}
	return a.insns
}

const (
	jeq = 0x15
	jne = 0x55
)

// popProgram is for eth0's ingress: a frame tagged vid loses its tag and
// leaves by device toIfindex; anything else goes on to the next filter.
func popProgram(vid uint16, toIfindex int) []bpfInsn {
	var a bpfAsm
	a.movReg(6, 1) // r6 = skb: r1-r5 do not survive calls
	a.loadU32(0, 6, skbVLANPresent)
	a.jumpIf(jeq, 0, 0, "other")
	a.loadU32(0, 6, skbVLANTCI)
	a.andImm(0, 0x0fff) // the VID, without priority and DEI bits
	a.jumpIf(jne, 0, int32(vid), "other")
	a.movReg(1, 6)
	a.call(helperSkbVLANPop)
	a.jumpIf(jne, 0, 0, "drop")
	a.movImm(1, int32(toIfindex))
	a.movImm(2, 0) // flags 0: out of the device, not into it
	a.call(helperRedirect)
	a.exit()
	a.label("other")
	a.movImm(0, tcActUnspec)
	a.exit()
	a.label("drop")
	a.movImm(0, tcActShot)
	a.exit()
	return a.assemble()
}

// pushProgram is for v<vid>'s ingress: every frame gets tag vid and leaves
// by device toIfindex.
func pushProgram(vid uint16, toIfindex int) []bpfInsn {
	var a bpfAsm
	// r1 is already the skb. The protocol goes in network byte order.
	a.movImm(2, int32(binary.NativeEndian.Uint16([]byte{0x81, 0x00}))) // ETH_P_8021Q
	a.movImm(3, int32(vid))
	a.call(helperSkbVLANPush)
	a.jumpIf(jne, 0, 0, "drop")
	a.movImm(1, int32(toIfindex))
	a.movImm(2, 0)
	a.call(helperRedirect)
	a.exit()
	a.label("drop")
	a.movImm(0, tcActShot)
	a.exit()
	return a.assemble()
}

// bpfProgLoadAttr is the BPF_PROG_LOAD part of union bpf_attr, up to
// prog_name: the kernel zero-fills fields past the size it is given.
type bpfProgLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       uint64
	license     uint64
	logLevel    uint32
	logSize     uint32
	logBuf      uint64
	kernVersion uint32
	progFlags   uint32
	progName    [16]byte
}

// loadTCProgram loads a tc (SCHED_CLS) program and returns its fd. On
// failure it loads it again with the verifier's log, for the error.
func loadTCProgram(name string, insns []bpfInsn) (int, error) {
	license := []byte("GPL\x00")
	attr := bpfProgLoadAttr{
		progType: unix.BPF_PROG_TYPE_SCHED_CLS,
		insnCnt:  uint32(len(insns)),
		insns:    uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	copy(attr.progName[:len(attr.progName)-1], name)
	load := func() (int, error) {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(insns)
		runtime.KeepAlive(license)
		if errno != 0 {
			return -1, errno
		}
		return int(fd), nil
	}
	fd, err := load()
	if err == nil {
		return fd, nil
	}
	log := make([]byte, 64<<10)
	attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(len(log)), uint64(uintptr(unsafe.Pointer(&log[0])))
	if fd, err2 := load(); err2 == nil {
		// Loaded the second time: keep it.
		return fd, nil
	}
	runtime.KeepAlive(log)
	if i := bytes.IndexByte(log, 0); i >= 0 {
		log = log[:i]
	}
	return -1, fmt.Errorf("load bpf program %s: %w: %s", name, err, log)
}

// attachVLAN wires VLAN vid of the external host: the pair eth0.<vid>, wire
// exists already; this loads both programs and attaches them. eth0's pop
// filter goes last, so traffic flows only once both directions work.
func (h *ExternalHost) attachVLAN(vid uint16, wire string) error {
	ns, err := netns.GetFromPath(h.NetnsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	eth0, err := nh.LinkByName(h.Interface)
	if err != nil {
		return fmt.Errorf("%s: %w", h.Interface, err)
	}
	wireLink, err := nh.LinkByName(wire)
	if err != nil {
		return fmt.Errorf("%s: %w", wire, err)
	}
	for _, link := range []netlink.Link{eth0, wireLink} {
		q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT,
		}}
		if err := nh.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("clsact on %s: %w", link.Attrs().Name, err)
		}
	}
	for _, f := range []struct {
		name  string
		prog  []bpfInsn
		on    netlink.Link
		order uint16
	}{
		{fmt.Sprintf("push%d", vid), pushProgram(vid, eth0.Attrs().Index), wireLink, 1},
		// One filter per VLAN on eth0, its priority the VID: each
		// passes other VLANs' frames on to the next.
		{fmt.Sprintf("pop%d", vid), popProgram(vid, wireLink.Attrs().Index), eth0, vid},
	} {
		fd, err := loadTCProgram(f.name, f.prog)
		if err != nil {
			return err
		}
		err = nh.FilterAdd(&netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: f.on.Attrs().Index, Parent: netlink.HANDLE_MIN_INGRESS,
				Handle: netlink.MakeHandle(0, 1), Protocol: unix.ETH_P_ALL, Priority: f.order,
			},
			Fd: fd, Name: f.name, DirectAction: true,
		})
		// The filter holds its own reference to the program.
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("attach %s to %s: %w", f.name, f.on.Attrs().Name, err)
		}
	}
	return nil
}
