package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// Probes that measure how long traffic stops while something fails: a
// ping every 10 ms and a TCP stream with a message every 10 ms. They live
// here so that every e2e suite measures outages the same way, and their
// numbers compare.

// Pinger pings a destination from a network namespace every 10 ms until
// stopped, and records the reply times.
type Pinger struct {
	cmd  *exec.Cmd
	out  io.ReadCloser
	mu   sync.Mutex
	seen []time.Time
	done chan struct{}
}

// replyLine is a reply of `ping -D`: the timestamp is ping's own, taken
// when the reply arrived, so the scanner's delays do not skew the gaps.
var replyLine = regexp.MustCompile(`^\[(\d+\.\d+)\] \d+ bytes from`)

// StartPinger starts pinging dst from netns (a name for `ip netns exec`).
// The caller must Stop it, or Kill it (in a cleanup) if it may not get
// that far.
func StartPinger(netns string, dst netip.Addr) (*Pinger, error) {
	pg := &Pinger{done: make(chan struct{})}
	// -i 0.01: an outage is measured to within the ping interval.
	pg.cmd = exec.Command("ip", "netns", "exec", netns, "ping", "-D", "-i", "0.01", "-W", "1", dst.String())
	var err error
	if pg.out, err = pg.cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if err := pg.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(pg.done)
		s := bufio.NewScanner(pg.out)
		for s.Scan() {
			if m := replyLine.FindStringSubmatch(s.Text()); m != nil {
				f, _ := strconv.ParseFloat(m[1], 64)
				pg.mu.Lock()
				pg.seen = append(pg.seen, time.Unix(0, int64(f*1e9)))
				pg.mu.Unlock()
			}
		}
	}()
	return pg, nil
}

// Stop interrupts ping, so that it flushes its output, and returns the
// reply times.
func (pg *Pinger) Stop() []time.Time {
	_ = pg.cmd.Process.Signal(os.Interrupt)
	<-pg.done
	_ = pg.cmd.Wait()
	pg.mu.Lock()
	defer pg.mu.Unlock()
	return pg.seen
}

// Kill ends ping without waiting for its output: it is for cleanups, and
// does nothing harmful after Stop (the process is gone and reaped).
func (pg *Pinger) Kill() {
	_ = pg.cmd.Process.Kill()
	_ = pg.cmd.Wait()
}

// RepliesSince counts the replies since t, to tell that traffic flows
// again before the measurement goes on.
func (pg *Pinger) RepliesSince(t time.Time) int {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	n := 0
	for _, s := range pg.seen {
		if s.After(t) {
			n++
		}
	}
	return n
}

// LongestGap is the longest pause between consecutive times within
// [from, to), less interval. The time before from counts as the start of
// the first gap, so an outage that began just before from is measured
// whole.
func LongestGap(times []time.Time, from, to time.Time, interval time.Duration) time.Duration {
	var longest time.Duration
	var prev time.Time
	for _, ts := range times {
		if ts.Before(from) {
			prev = ts
			continue
		}
		if !ts.Before(to) {
			break
		}
		if !prev.IsZero() {
			longest = max(longest, ts.Sub(prev)-interval)
		}
		prev = ts
	}
	return max(longest, 0)
}

// Stream is a TCP connection from a client namespace to a server that
// carries a 64-byte message every 10 ms; the server echoes each and
// records when it arrived. Unlike ping, it shows whether an established
// connection survives the fault.
type Stream struct {
	conn   net.Conn
	l      net.Listener
	mu     sync.Mutex
	got    []time.Time
	sent   int
	echoed int
	err    error
	// why says what failed, when the stream did not survive.
	why    string
	stopCh chan struct{}
	wg     sync.WaitGroup
}

// StartStream listens on listen (any port) inside the namespace at
// serverNetnsPath, connects to it from the namespace at clientNetnsPath
// and starts sending. The caller must Finish it, and Close it in a
// cleanup.
func StartStream(serverNetnsPath string, listen netip.Addr, clientNetnsPath string) (*Stream, error) {
	s := &Stream{stopCh: make(chan struct{})}
	if err := InNetns(serverNetnsPath, func() (err error) {
		s.l, err = net.Listen("tcp", netip.AddrPortFrom(listen, 0).String())
		return err
	}); err != nil {
		return nil, err
	}
	go func() {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			s.mu.Lock()
			s.got = append(s.got, time.Now())
			s.mu.Unlock()
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	if err := InNetns(clientNetnsPath, func() (err error) {
		s.conn, err = net.DialTimeout("tcp", s.l.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		// Ends the accepting goroutine too.
		s.l.Close()
		return nil, err
	}
	s.wg.Add(2)
	go func() { // writer
		defer s.wg.Done()
		msg := make([]byte, 64)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stopCh:
				return
			case <-tick.C:
			}
			// Long enough to ride out the outages being measured; a
			// write blocked longer means the connection is lost.
			_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			_, err := s.conn.Write(msg)
			s.mu.Lock()
			if err != nil {
				s.err = err
			} else {
				s.sent++
			}
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { // reader of the echoes
		defer s.wg.Done()
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(s.conn, buf); err != nil {
				return
			}
			s.mu.Lock()
			s.echoed++
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// Finish stops writing, waits for the last echoes and reports the
// deliveries and whether the connection carried data both ways after
// time after (the fault's end) without an error.
func (s *Stream) Finish(after time.Time) (got []time.Time, survived bool) {
	close(s.stopCh)
	// What was queued during an outage arrives only as TCP retransmits
	// it, so the echoes may lag the writes by seconds.
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s.mu.Lock()
		done := s.err != nil || s.echoed >= s.sent
		s.mu.Unlock()
		if done {
			break
		}
	}
	s.conn.Close()
	s.l.Close()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	survived = s.err == nil && s.echoed >= s.sent && len(s.got) > 0 && s.got[len(s.got)-1].After(after)
	if !survived {
		s.why = fmt.Sprintf("sent %d, host got %d, echoed %d, error %v", s.sent, len(s.got), s.echoed, s.err)
	}
	return s.got, survived
}

// Why says what the stream lacked when Finish found it did not survive:
// messages sent, received by the server, echoed back, the sender's error.
// It is "" otherwise.
func (s *Stream) Why() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why
}

// Close closes the connection and the listener, which ends the stream's
// goroutines; it is for cleanups, and harmless after Finish.
func (s *Stream) Close() {
	s.l.Close()
	s.conn.Close()
}
