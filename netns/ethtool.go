package netns

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ethtoolValue is struct ethtool_value from <linux/ethtool.h>.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member of the union in use.
// The trailing padding makes it at least sizeof(struct ifreq) (40 bytes on
// 64-bit, 32 on 32-bit) since the kernel copies the whole struct in.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer // *ethtoolValue
	_    [16]byte
}

// socketInNetns opens an AF_INET datagram socket inside ns (see
// socketOfKindInNetns).
func socketInNetns(ns netns.NsHandle) (int, error) {
	return socketOfKindInNetns(ns, unix.AF_INET, unix.SOCK_DGRAM, 0)
}

// socketOfKindInNetns opens a socket of the given domain, type and protocol
// inside ns. A socket keeps
// the namespace it was created in, so ioctls on it address interfaces of ns
// whatever thread later uses it. Creating it requires switching an OS thread
// into ns: this is done on a dedicated goroutine locked to its thread. If the
// thread cannot be switched back, the goroutine exits still locked and the Go
// runtime terminates the thread instead of reusing it in the wrong netns.
func socketOfKindInNetns(ns netns.NsHandle, domain, typ, proto int) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			// setns failed: the thread is still in its original netns.
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("enter netns: %w", err)}
			return
		}
		fd, serr := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		if rerr := netns.Set(orig); rerr != nil {
			if serr == nil {
				unix.Close(fd)
			}
			// Leave the thread locked: it dies with this goroutine.
			ch <- result{-1, fmt.Errorf("restore netns: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		if serr != nil {
			ch <- result{-1, fmt.Errorf("socket: %w", serr)}
			return
		}
		ch <- result{fd, nil}
	}()
	r := <-ch
	return r.fd, r.err
}

// ethtoolValueIoctl issues a SIOCETHTOOL ioctl carrying a struct
// ethtool_value for ifName on socket fd and returns the data field.
func ethtoolValueIoctl(fd int, ifName string, cmd, data uint32) (uint32, error) {
	if len(ifName) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q too long", ifName)
	}
	val := &ethtoolValue{cmd: cmd, data: data}
	ifr := &ifreqData{data: unsafe.Pointer(val)}
	copy(ifr.name[:], ifName)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.SIOCETHTOOL), uintptr(unsafe.Pointer(ifr)))
	// ifr and val must stay alive (and val reachable) until the kernel is done.
	runtime.KeepAlive(ifr)
	runtime.KeepAlive(val)
	if errno != 0 {
		return 0, errno
	}
	return val.data, nil
}

// setTxChecksum enables or disables TX checksum offload (ETHTOOL_STXCSUM) on
// ifName in ns.
func setTxChecksum(ns netns.NsHandle, ifName string, on bool) error {
	fd, err := socketInNetns(ns)
	if err != nil {
		return fmt.Errorf("open socket in pod netns: %w", err)
	}
	defer unix.Close(fd)
	var v uint32
	if on {
		v = 1
	}
	if _, err := ethtoolValueIoctl(fd, ifName, unix.ETHTOOL_STXCSUM, v); err != nil {
		return fmt.Errorf("ETHTOOL_STXCSUM on %q: %w", ifName, err)
	}
	// Read back: some drivers accept the request but keep the feature.
	got, err := ethtoolValueIoctl(fd, ifName, unix.ETHTOOL_GTXCSUM, 0)
	if err != nil {
		return fmt.Errorf("ETHTOOL_GTXCSUM on %q: %w", ifName, err)
	}
	if (got != 0) != on {
		return errors.New("TX checksum offload setting did not take effect")
	}
	return nil
}

// txChecksumEnabled reads TX checksum offload (ETHTOOL_GTXCSUM) of ifName in
// ns.
func txChecksumEnabled(ns netns.NsHandle, ifName string) (bool, error) {
	fd, err := socketInNetns(ns)
	if err != nil {
		return false, fmt.Errorf("open socket in pod netns: %w", err)
	}
	defer unix.Close(fd)
	got, err := ethtoolValueIoctl(fd, ifName, unix.ETHTOOL_GTXCSUM, 0)
	if err != nil {
		return false, fmt.Errorf("ETHTOOL_GTXCSUM on %q: %w", ifName, err)
	}
	return got != 0, nil
}
