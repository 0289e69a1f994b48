package openflow

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---- A scripted switch that takes several connections: Session. ----

// fakeOVS accepts connections on a fresh socket and serves the i-th with
// its i-th script; a connection past the last script fails the test. It
// counts what a Session should do few of.
type fakeOVS struct {
	sock     string
	accepts  atomic.Int32 // connections accepted
	hellos   atomic.Int32 // client HELLOs read
	requests atomic.Int32 // flow stats requests read, on all connections
}

type ovsScript func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error

func newFakeOVS(t *testing.T, scripts ...ovsScript) *fakeOVS {
	t.Helper()
	sw := &fakeOVS{sock: filepath.Join(t.TempDir(), "br-fake.mgmt")}
	l, err := net.Listen("unix", sw.sock)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
		errs  []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	wg.Go(func() {
		for i := 0; ; i++ {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					fail(err)
				}
				return
			}
			sw.accepts.Add(1)
			if i >= len(scripts) {
				fail(fmt.Errorf("connection %d: the script has %d", i+1, len(scripts)))
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				if err := scripts[i](sw, c, bufio.NewReader(c)); err != nil {
					fail(fmt.Errorf("connection %d: %w", i+1, err))
				}
			})
		}
	})
	// The test's own cleanups (Session.Close) run before this one.
	t.Cleanup(func() {
		l.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			fail(errors.New("a script did not end (was the session closed?)"))
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			<-done
		}
		for _, err := range errs {
			t.Errorf("fake switch: %v", err)
		}
	})
	return sw
}

// greet sends the switch's HELLO and reads the client's.
func (sw *fakeOVS) greet(c net.Conn, r *bufio.Reader) error {
	if _, err := c.Write(ovsHello); err != nil {
		return err
	}
	h, _, err := readMessage(r)
	if err != nil {
		return err
	}
	if h.Type != typeHello || h.Version != version13 {
		return fmt.Errorf("first message %+v, want a 1.3 HELLO", h)
	}
	sw.hellos.Add(1)
	return nil
}

// request is a flow stats request as the switch read it.
type request struct {
	xid    uint32
	inPort uint32 // 0: the match has no in_port
}

// expectRequests reads n flow stats requests.
func (sw *fakeOVS) expectRequests(r *bufio.Reader, n int) ([]request, error) {
	var reqs []request
	for range n {
		h, body, err := readMessage(r)
		if err != nil {
			return nil, err
		}
		req, err := sw.parseRequest(h, body)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, req)
	}
	return reqs, nil
}

func (sw *fakeOVS) parseRequest(h header, body []byte) (request, error) {
	if h.Type != typeMultipartRequest || binary.BigEndian.Uint16(body) != multipartFlow {
		return request{}, fmt.Errorf("message %+v, want a flow stats request", h)
	}
	sw.requests.Add(1)
	req := request{xid: h.Xid}
	// The match follows the multipart header (8 bytes) and the request's
	// fixed fields (32): type, length, then an in_port OXM comes first.
	if m := body[40:]; len(m) >= 12 && binary.BigEndian.Uint32(m[4:8]) == 0x80000004 {
		req.inPort = binary.BigEndian.Uint32(m[8:12])
	}
	return req, nil
}

// expectClosed reads until the client hangs up, which must come before
// any other message.
func expectClosed(r *bufio.Reader) error {
	h, _, err := readMessage(r)
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("got %+v, want the client to close the connection", h)
}

// cookieReply answers xid with one flow whose cookie is cookie.
func cookieReply(xid uint32, cookie uint64) []byte {
	return message(typeMultipartReply, xid, multipartBody(false, flowStats(0, 1, cookie, 0, 0, 0, inPort5Match, nil)))
}

// answerAll greets, then answers every request with one flow whose cookie
// is the request's in_port until the client hangs up.
func answerAll(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
	if err := sw.greet(c, r); err != nil {
		return err
	}
	for {
		h, body, err := readMessage(r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		req, err := sw.parseRequest(h, body)
		if err != nil {
			return err
		}
		if _, err := c.Write(cookieReply(req.xid, uint64(req.inPort))); err != nil {
			return err
		}
	}
}

// askPort asks s for in_port port; the fake switch answers with cookie port.
func askPort(t *testing.T, s *Session, port uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := s.Flows(ctx, Query{Match: Match{InPort: port}})
	if err != nil {
		t.Fatalf("in_port %d: %v", port, err)
	}
	if len(res) != 1 || len(res[0]) != 1 || res[0][0].Cookie != uint64(port) {
		t.Fatalf("in_port %d: %+v, want one flow of cookie %d", port, res, port)
	}
}

func newTestSession(t *testing.T, sock string) *Session {
	s := NewSession(sock)
	t.Cleanup(s.Close)
	return s
}

// TestSessionReusesConnection: calls share one connection and one HELLO,
// with xids that never repeat, and each reply lands with its query even
// when the switch answers out of order.
func TestSessionReusesConnection(t *testing.T) {
	xidsSeen := make(chan []uint32, 2)
	sw := newFakeOVS(t, func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
		if err := sw.greet(c, r); err != nil {
			return err
		}
		for range 2 {
			reqs, err := sw.expectRequests(r, 2)
			if err != nil {
				return err
			}
			xidsSeen <- []uint32{reqs[0].xid, reqs[1].xid}
			// Last first; the cookie says which xid it answered.
			if _, err := c.Write(append(cookieReply(reqs[1].xid, uint64(reqs[1].xid)), cookieReply(reqs[0].xid, uint64(reqs[0].xid))...)); err != nil {
				return err
			}
		}
		return expectClosed(r)
	})
	s := newTestSession(t, sw.sock)
	if s.Socket() != sw.sock {
		t.Errorf("Socket() = %q, want %q", s.Socket(), sw.sock)
	}
	var xids []uint32
	for call := range 2 {
		res, err := s.Flows(context.Background(), Query{Match: Match{InPort: 1}}, Query{Match: Match{InPort: 2}})
		if err != nil {
			t.Fatalf("call %d: %v", call+1, err)
		}
		seen := <-xidsSeen
		for i, r := range res {
			if len(r) != 1 || r[0].Cookie != uint64(seen[i]) {
				t.Errorf("call %d query %d: %+v, want the reply to xid %d", call+1, i, r, seen[i])
			}
		}
		xids = append(xids, seen...)
	}
	if !slices.IsSorted(xids) || len(slices.Compact(slices.Clone(xids))) != len(xids) {
		t.Errorf("xids %v, want them strictly increasing", xids)
	}
	if slices.Contains(xids, sessionHelloXid) {
		t.Errorf("xids %v reuse the HELLO's %d", xids, sessionHelloXid)
	}
	if a, h := sw.accepts.Load(), sw.hellos.Load(); a != 1 || h != 1 {
		t.Errorf("%d connections and %d HELLOs, want one of each", a, h)
	}
}

// TestSessionRetryRule: a connection that broke while idle or under the
// request costs one reconnect the caller does not see; an answer from the
// switch (an error, a reply that does not parse) is returned as it is, on
// one request, and the next call starts on a fresh connection.
func TestSessionRetryRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		// second is what the switch does with the session's second
		// call, on the connection that served the first (port 1).
		second  ovsScript
		idle    bool // second closes the connection before the call
		retried bool // the call is answered on a new connection
		check   func(t *testing.T, err error)
	}{
		{name: "closed while idle (restart, idle drop)", idle: true, retried: true,
			second: func(*fakeOVS, net.Conn, *bufio.Reader) error { return nil }},
		{name: "hang-up under the request", retried: true,
			second: func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
				_, err := sw.expectRequests(r, 1)
				return err
			}},
		{name: "hang-up mid reply", retried: true,
			second: func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
				reqs, err := sw.expectRequests(r, 1)
				if err != nil {
					return err
				}
				_, err = c.Write(message(typeMultipartReply, reqs[0].xid, multipartBody(true)))
				return err
			}},
		{name: "OFPT_ERROR",
			second: func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
				reqs, err := sw.expectRequests(r, 1)
				if err != nil {
					return err
				}
				if _, err := c.Write(message(typeError, reqs[0].xid, unhex("0004 0006 deadbeef"))); err != nil {
					return err
				}
				return expectClosed(r)
			},
			check: func(t *testing.T, err error) {
				var e *Error
				if !errors.As(err, &e) || e.Type != 4 || e.Code != 6 {
					t.Errorf("error %v, want *Error BAD_MATCH code 6", err)
				}
			}},
		{name: "malformed reply",
			second: func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
				reqs, err := sw.expectRequests(r, 1)
				if err != nil {
					return err
				}
				e := flowStats(0, 1, 1, 0, 0, 0, inPort5Match, nil)
				binary.BigEndian.PutUint16(e, 0)
				if _, err := c.Write(message(typeMultipartReply, reqs[0].xid, multipartBody(false, e))); err != nil {
					return err
				}
				return expectClosed(r)
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, errMalformed) {
					t.Errorf("error %v, want errMalformed", err)
				}
			}},
		{name: "reply of another version",
			second: func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
				reqs, err := sw.expectRequests(r, 1)
				if err != nil {
					return err
				}
				m := cookieReply(reqs[0].xid, 2)
				m[0] = 1
				if _, err := c.Write(m); err != nil {
					return err
				}
				return expectClosed(r)
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, errMalformed) {
					t.Errorf("error %v, want errMalformed", err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan struct{})
			sw := newFakeOVS(t,
				func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
					defer close(closed)
					if err := sw.greet(c, r); err != nil {
						return err
					}
					reqs, err := sw.expectRequests(r, 1)
					if err != nil {
						return err
					}
					if _, err := c.Write(cookieReply(reqs[0].xid, 1)); err != nil {
						return err
					}
					if tc.idle {
						c.Close()
						return nil
					}
					return tc.second(sw, c, r)
				},
				answerAll)
			s := newTestSession(t, sw.sock)
			askPort(t, s, 1)
			if tc.idle {
				<-closed
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := s.Flows(ctx, Query{Match: Match{InPort: 2}})
			if ctx.Err() != nil {
				t.Fatalf("the call hung until its deadline: %v", err)
			}
			wantAccepts, wantRequests := int32(1), int32(2)
			if tc.retried {
				if err != nil {
					t.Fatalf("no reconnect: %v", err)
				}
				if len(res[0]) != 1 || res[0][0].Cookie != 2 {
					t.Errorf("result %+v, want cookie 2", res)
				}
				wantAccepts, wantRequests = 2, 3
				if tc.idle {
					// The request went nowhere (EPIPE) or into a socket
					// nobody reads; only the retry's is seen.
					wantRequests = 2
				}
			} else {
				if err == nil {
					t.Fatalf("Flows = %+v, want the switch's answer as an error", res)
				}
				tc.check(t, err)
				<-closed // the switch read all the session sent on it
			}
			if a, n := sw.accepts.Load(), sw.requests.Load(); a != wantAccepts || n != wantRequests {
				t.Errorf("%d connections and %d requests, want %d and %d", a, n, wantAccepts, wantRequests)
			}
			// The session goes on, on a fresh connection after an error.
			askPort(t, s, 3)
			askPort(t, s, 4)
			if a := sw.accepts.Load(); a != 2 {
				t.Errorf("%d connections in all, want 2", a)
			}
		})
	}
}

// TestSessionNoRetryOnFreshConnection: a connection of the call's own that
// fails says the switch is down (or refuses): no second try.
func TestSessionNoRetryOnFreshConnection(t *testing.T) {
	sw := newFakeOVS(t, func(*fakeOVS, net.Conn, *bufio.Reader) error { return nil })
	s := newTestSession(t, sw.sock)
	_, err := s.Flows(context.Background(), Query{})
	if err == nil || !strings.Contains(err.Error(), "br-fake.mgmt") {
		t.Errorf("error %v, want one naming the socket", err)
	}
	if a := sw.accepts.Load(); a != 1 {
		t.Errorf("%d connections, want 1", a)
	}

	missing := filepath.Join(t.TempDir(), "br-none.mgmt")
	if _, err := NewSession(missing).Flows(context.Background(), Query{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want ENOENT", err)
	}
}

// TestSessionIdleEcho: an echo request the switch sent while the session
// was idle is answered, same xid and body, by the next call, which
// succeeds on the same connection.
func TestSessionIdleEcho(t *testing.T) {
	echoSent := make(chan struct{})
	sw := newFakeOVS(t, func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
		if err := sw.greet(c, r); err != nil {
			return err
		}
		reqs, err := sw.expectRequests(r, 1)
		if err != nil {
			return err
		}
		if _, err := c.Write(cookieReply(reqs[0].xid, 1)); err != nil {
			return err
		}
		if _, err := c.Write(message(typeEchoRequest, 0x4242, []byte("idle-ping"))); err != nil {
			return err
		}
		close(echoSent)
		// The next call's request comes first, then the echo reply: the
		// switch answers only once the echo is.
		if reqs, err = sw.expectRequests(r, 1); err != nil {
			return err
		}
		h, body, err := readMessage(r)
		if err != nil {
			return fmt.Errorf("no echo reply: %w", err)
		}
		if h.Type != typeEchoReply || h.Xid != 0x4242 || string(body) != "idle-ping" {
			return fmt.Errorf("got %+v with body %q, want an echo reply with xid 0x4242 and body %q", h, body, "idle-ping")
		}
		if _, err := c.Write(cookieReply(reqs[0].xid, 2)); err != nil {
			return err
		}
		return expectClosed(r)
	})
	s := newTestSession(t, sw.sock)
	askPort(t, s, 1)
	<-echoSent
	time.Sleep(20 * time.Millisecond) // idle, the echo waiting in the socket
	askPort(t, s, 2)
	if a := sw.accepts.Load(); a != 1 {
		t.Errorf("%d connections, want 1", a)
	}
}

// TestSessionContext: a switch that stops answering holds a call only
// until its ctx ends; the error is ctx's, the call is not retried, and the
// next call (a new ctx) gets a fresh connection.
func TestSessionContext(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 150*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel without deadline", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(150*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := newFakeOVS(t,
				func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
					if err := sw.greet(c, r); err != nil {
						return err
					}
					reqs, err := sw.expectRequests(r, 1)
					if err != nil {
						return err
					}
					if _, err := c.Write(cookieReply(reqs[0].xid, 1)); err != nil {
						return err
					}
					if _, err := sw.expectRequests(r, 1); err != nil {
						return err
					}
					return expectClosed(r) // never answers
				},
				answerAll)
			s := newTestSession(t, sw.sock)
			askPort(t, s, 1)
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			_, err := s.Flows(ctx, Query{Match: Match{InPort: 2}})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("returned after %s", d)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "br-fake.mgmt") {
				t.Errorf("error %v, want %v naming the socket", err, tc.want)
			}
			if a, n := sw.accepts.Load(), sw.requests.Load(); a != 1 || n != 2 {
				t.Errorf("%d connections and %d requests, want 1 and 2: no retry once ctx ended", a, n)
			}
			askPort(t, s, 3)
			if a := sw.accepts.Load(); a != 2 {
				t.Errorf("%d connections, want 2", a)
			}
		})
	}
	t.Run("socket's timer before ctx's", func(t *testing.T) {
		// The connection's deadline is ctx's, but the two timers fire in
		// either order: a read can time out a moment before ctx.Err()
		// says so. The error must still be ctx's (and not be retried).
		// Without the wait for ctx a few in a thousand calls returned a
		// bare "i/o timeout".
		const calls = 1000
		silentOn99 := func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
			if err := sw.greet(c, r); err != nil {
				return err
			}
			for {
				h, body, err := readMessage(r)
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				req, err := sw.parseRequest(h, body)
				if err != nil {
					return err
				}
				if req.inPort == 99 {
					continue
				}
				if _, err := c.Write(cookieReply(req.xid, uint64(req.inPort))); err != nil {
					return err
				}
			}
		}
		sw := newFakeOVS(t, slices.Repeat([]ovsScript{silentOn99}, calls)...)
		s := newTestSession(t, sw.sock)
		bad := 0
		for range calls {
			askPort(t, s, 1) // the next call is on a reused connection
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			_, err := s.Flows(ctx, Query{Match: Match{InPort: 99}})
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				if bad++; bad <= 3 {
					t.Errorf("error %v, want DeadlineExceeded", err)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%d of %d calls did not return ctx's error", bad, calls)
		}
		if a := sw.accepts.Load(); a != calls {
			t.Errorf("%d connections for %d expired calls, want one each: no retry", a, calls)
		}
	})
	t.Run("already done", func(t *testing.T) {
		sw := newFakeOVS(t, answerAll)
		s := newTestSession(t, sw.sock)
		askPort(t, s, 1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Flows(ctx, Query{}); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want Canceled", err)
		}
		// Nothing was sent, and the connection is still good.
		askPort(t, s, 2)
		if a, n := sw.accepts.Load(), sw.requests.Load(); a != 1 || n != 2 {
			t.Errorf("%d connections and %d requests, want 1 and 2", a, n)
		}
	})
}

// TestSessionWaitBoundedByContext: a call waiting for the connection while
// another holds it gives up when its own ctx ends.
func TestSessionWaitBoundedByContext(t *testing.T) {
	held := make(chan struct{})
	sw := newFakeOVS(t, func(sw *fakeOVS, c net.Conn, r *bufio.Reader) error {
		if err := sw.greet(c, r); err != nil {
			return err
		}
		if _, err := sw.expectRequests(r, 1); err != nil {
			return err
		}
		close(held)
		return expectClosed(r) // never answers
	})
	s := newTestSession(t, sw.sock)
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	errA := make(chan error, 1)
	go func() {
		_, err := s.Flows(ctxA, Query{})
		errA <- err
	}()
	<-held
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Flows(ctx, Query{})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the waiting call returned after %s", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting call: error %v, want DeadlineExceeded", err)
	}
	select {
	case err := <-errA:
		t.Fatalf("the holding call ended early: %v", err)
	default:
	}
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("holding call: error %v, want Canceled", err)
	}
}

// TestSessionBadQuery: a query that cannot be encoded is the caller's bug:
// it is refused before the switch sees anything, and costs neither the
// connection nor a dial.
func TestSessionBadQuery(t *testing.T) {
	sw := newFakeOVS(t, answerAll)
	s := newTestSession(t, sw.sock)
	askPort(t, s, 1)
	bad := Query{Match: Match{EthSrc: net.HardwareAddr{1, 2, 3}}}
	if _, err := s.Flows(context.Background(), Query{Match: Match{InPort: 2}}, bad); err == nil || !strings.Contains(err.Error(), "query 1") {
		t.Errorf("error %v, want one about query 1", err)
	}
	if _, err := s.Flows(context.Background(), make([]Query, MaxQueries+1)...); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("error %v, want one about the query limit", err)
	}
	askPort(t, s, 3)
	if a, n := sw.accepts.Load(), sw.requests.Load(); a != 1 || n != 2 {
		t.Errorf("%d connections and %d requests, want 1 and 2", a, n)
	}
	if _, err := NewSession("/nonexistent.mgmt").Flows(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "query 0") {
		t.Errorf("error %v, want one about query 0 before dialling", err)
	}
}

// TestSessionClose: Close drops the connection; the session reconnects on
// its next call.
func TestSessionClose(t *testing.T) {
	sw := newFakeOVS(t, answerAll, answerAll)
	s := newTestSession(t, sw.sock)
	askPort(t, s, 1)
	s.Close()
	s.Close() // twice is fine
	askPort(t, s, 2)
	if a, h := sw.accepts.Load(), sw.hellos.Load(); a != 2 || h != 2 {
		t.Errorf("%d connections and %d HELLOs, want 2 of each", a, h)
	}
}

// TestSessionClosesWhenIdle: an unused connection is closed before
// ovs-vswitchd's inactivity probe would (the switch sees it close), and the
// next call opens a new one without an error.
func TestSessionClosesWhenIdle(t *testing.T) {
	sw := newFakeOVS(t, answerAll, answerAll)
	s := newTestSession(t, sw.sock)
	s.idleAfter = 50 * time.Millisecond
	askPort(t, s, 1)
	askPort(t, s, 2) // within the idle time: the same connection
	if a := sw.accepts.Load(); a != 1 {
		t.Fatalf("%d connections before going idle, want 1", a)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.turn <- struct{}{}
		closed := s.c == nil
		<-s.turn
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle connection is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	askPort(t, s, 3)
	if a, r := sw.accepts.Load(), sw.requests.Load(); a != 2 || r != 3 {
		t.Errorf("%d connections and %d requests, want 2 and 3 (no failed attempt)", a, r)
	}
}

// TestSessionConcurrent: callers in several goroutines share the session;
// each gets the answers to its own queries (run with -race).
func TestSessionConcurrent(t *testing.T) {
	sw := newFakeOVS(t, answerAll)
	s := newTestSession(t, sw.sock)
	const goroutines, calls = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for k := range calls {
				a, b := uint32(1000*(g+1)+2*k), uint32(1000*(g+1)+2*k+1)
				res, err := s.Flows(context.Background(), Query{Match: Match{InPort: a}}, Query{Match: Match{InPort: b}})
				if err != nil {
					errs <- err
					return
				}
				if len(res[0]) != 1 || res[0][0].Cookie != uint64(a) || len(res[1]) != 1 || res[1][0].Cookie != uint64(b) {
					errs <- fmt.Errorf("goroutine %d asked for %d and %d, got %+v", g, a, b, res)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if a, n := sw.accepts.Load(), sw.requests.Load(); a != 1 || n != 2*goroutines*calls {
		t.Errorf("%d connections and %d requests, want 1 and %d", a, n, 2*goroutines*calls)
	}
}

// ---- Session against a real ovs-vswitchd. ----

// comparableFlows drops what two reads of the same flow table may differ in:
// the flows' age.
func comparableFlows(flows []Flow) []string {
	var s []string
	for _, f := range flows {
		s = append(s, fmt.Sprintf("%x cookie=%#x table=%d priority=%d packets=%d bytes=%d", f.Key, f.Cookie, f.Table, f.Priority, f.Packets, f.Bytes))
	}
	slices.Sort(s)
	return s
}

// TestSessionRealSwitch: a session's answers are Flows' own, on one
// connection; after ovs-vswitchd restarts, the next call reconnects by
// itself.
func TestSessionRealSwitch(t *testing.T) {
	sock := testBridge(t, "br-ofsess")
	addTestFlows(t, sock)
	s := newTestSession(t, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	queries := []Query{
		{},
		{Match: Match{InPort: 5}},
		{Table: u8(10)},
		{Match: Match{Metadata: u64(0x2a), Reg14: u32(3)}},
		{Match: Match{Reg15: u32(4)}},
		{Match: Match{EthSrc: mac(t, "0a:58:00:00:00:01")}},
		{Match: Match{EthDst: mac(t, "0a:58:00:00:00:02")}},
		{OutPort: 7},
		{Match: Match{InPort: 6}},
	}
	var first *conn
	for i, q := range queries {
		want, err := Flows(ctx, sock, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Flows(ctx, q)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if g, w := comparableFlows(got[0]), comparableFlows(want[0]); !slices.Equal(g, w) {
			t.Errorf("query %d %+v: session found\n%s\nFlows\n%s", i, q, strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
		if first == nil {
			first = s.c
		}
	}
	// All of them in one call.
	want, err := Flows(ctx, sock, queries...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Flows(ctx, queries...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range queries {
		if g, w := comparableFlows(got[i]), comparableFlows(want[i]); !slices.Equal(g, w) {
			t.Errorf("query %d of %d: session found %v, Flows %v", i, len(queries), g, w)
		}
	}
	if s.c != first || first == nil {
		t.Error("the session did not keep its connection")
	}

	// ovs-vswitchd restarts: the session's connection is dead, the bridge
	// comes back from the database, its flows do not.
	node := cluster.Nodes[0]
	if err := node.RestartVSwitchd(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitBrIntFlows(t) })
	res, err := s.Flows(ctx, Query{})
	if err != nil {
		t.Fatalf("first call after the restart: %v", err)
	}
	if len(res[0]) != 0 || ofctlCount(t, sock, "") != 0 {
		t.Errorf("%d flows after the restart (ovs-ofctl: %d), want none", len(res[0]), ofctlCount(t, sock, ""))
	}
	if s.c == first || s.c == nil {
		t.Error("the session answered without a new connection")
	}
	second := s.c
	ofctl(t, "add-flow", "unix:"+sock, "cookie=0x77,table=0,priority=5,in_port=9,actions=drop")
	res, err = s.Flows(ctx, Query{Match: Match{InPort: 9}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cookies(res[0]); !slices.Equal(got, []uint64{0x77}) {
		t.Errorf("cookies %v after re-adding a flow, want [0x77]", got)
	}
	if s.c != second {
		t.Error("the session did not keep its new connection")
	}
}

// waitBrIntFlows waits until ovn-controller has put br-int's flows back
// after an ovs-vswitchd restart, so that the tests after this one find
// the node as they would have.
func waitBrIntFlows(t *testing.T) {
	t.Helper()
	sock, err := SocketPath(cluster.Nodes[0].OVS, "br-int")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	last := -1
	for {
		n := ofctlCount(t, sock, "")
		if n > 0 && n == last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("br-int has %d flows 60 s after the ovs-vswitchd restart", n)
		}
		last = n
		time.Sleep(500 * time.Millisecond)
	}
}

func BenchmarkSessionFlows(b *testing.B) {
	sock := testBridge(b, "br-ofsbench")
	addTestFlows(b, sock)
	s := NewSession(sock)
	b.Cleanup(s.Close)
	q := Query{Match: Match{InPort: 5}}
	ctx := context.Background()
	for b.Loop() {
		res, err := s.Flows(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if len(res[0]) != 2 {
			b.Fatalf("%d flows, want 2", len(res[0]))
		}
	}
}
