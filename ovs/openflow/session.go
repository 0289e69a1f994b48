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
	"time"
)

// Session keeps one connection to a bridge's management socket for callers
// that ask often (CNI CHECK): a fresh connection costs a dial and the HELLO
// exchange, which ovs-vswitchd answers from its main loop: about as much
// again as a flow-stats request on an open connection takes (a one-query
// call halves, BenchmarkSessionFlows against BenchmarkFlows). It is safe for
// concurrent use; requests take turns on the connection, and a caller's ctx
// also bounds its wait for its turn.
//
// ovs-vswitchd drops the connection when it restarts: the next request
// then finds it broken, reconnects and asks again, once. An idle session
// closes its connection itself after IdleClose: after 60 s of silence
// ovs-vswitchd sends an echo request (OVS 3.1 and 3.5), and 60 s later,
// unanswered, it disconnects, logging "no response to inactivity probe" at
// ERR level, which would fill a quiet node's log with false alarms.
type Session struct {
	socket string
	// turn holds one token while a request (or Close) uses the
	// connection: a channel rather than a mutex so that a caller whose ctx
	// ends while another request holds the connection gives up.
	turn chan struct{}
	c    *conn // nil until the first request, and after a failure
	xid  uint32
	// idle closes the connection idleAfter (IdleClose) after the last
	// request.
	idle      *time.Timer
	idleAfter time.Duration
}

// IdleClose is how long a session keeps an unused connection: under
// ovs-vswitchd's 60 s inactivity probe, so the switch never probes it.
const IdleClose = 50 * time.Second

// NewSession returns a session with socket; it connects on first use.
func NewSession(socket string) *Session {
	return &Session{socket: socket, turn: make(chan struct{}, 1), idleAfter: IdleClose}
}

// Socket is the management socket the session talks to.
func (s *Session) Socket() string { return s.socket }

// Close drops the connection; a later request opens a new one. It waits
// for a request in progress to end (its ctx bounds it).
func (s *Session) Close() {
	s.turn <- struct{}{}
	defer func() { <-s.turn }()
	if s.idle != nil {
		s.idle.Stop()
	}
	s.drop()
}

func (s *Session) drop() {
	if s.c != nil {
		_ = s.c.nc.Close()
		s.c = nil
	}
}

// Flows is the package's Flows on the session's connection: results[i]
// answers queries[i], and ctx bounds the whole call, the wait for the
// connection included.
func (s *Session) Flows(ctx context.Context, queries ...Query) ([][]Flow, error) {
	if len(queries) > MaxQueries {
		return nil, fmt.Errorf("openflow: %d queries in one call, at most %d", len(queries), MaxQueries)
	}
	// Encode first, xids patched in later: a bad query is the caller's
	// bug, and must neither cost the connection nor be retried.
	var msgs []byte
	offsets := make([]int, len(queries))
	for i, q := range queries {
		offsets[i] = len(msgs)
		var err error
		if msgs, err = appendFlowStatsRequest(msgs, 0, q); err != nil {
			return nil, fmt.Errorf("openflow: query %d: %w", i, err)
		}
	}
	if err := ctx.Err(); err != nil {
		// Started, the call would be cut short and cost the connection.
		return nil, fmt.Errorf("openflow: flow stats from %s: %w", s.socket, context.Cause(ctx))
	}
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("openflow: flow stats from %s: waiting for the session: %w", s.socket, context.Cause(ctx))
	}
	defer func() {
		s.armIdle()
		<-s.turn
	}()
	reused := s.c != nil
	res, err := s.flows(ctx, msgs, offsets)
	if err != nil && reused && ctx.Err() == nil && !isSwitchAnswer(err) {
		// The connection may have died while idle: one more try on a
		// fresh one tells a dead connection from a dead switch.
		res, err = s.flows(ctx, msgs, offsets)
	}
	return res, err
}

// armIdle (re)starts the idle timer; the caller holds the turn.
func (s *Session) armIdle() {
	if s.c == nil {
		return
	}
	if s.idle == nil {
		s.idle = time.AfterFunc(s.idleAfter, s.closeIdle)
		return
	}
	s.idle.Reset(s.idleAfter)
}

// closeIdle drops the connection unless a request is using it (that
// request re-arms the timer when it ends).
func (s *Session) closeIdle() {
	select {
	case s.turn <- struct{}{}:
		s.drop()
		<-s.turn
	default:
	}
}

// isSwitchAnswer: the switch itself refused the request (a retry would be
// refused again) or its reply was malformed.
func isSwitchAnswer(err error) bool {
	var e *Error
	return errors.As(err, &e) || errors.Is(err, errMalformed) || errors.Is(err, ErrNoOpenFlow13)
}

// ctxCause returns ctx's cause when err is the deadline that ctx put on the
// connection, nil otherwise. The socket's timer can fire a moment before
// ctx's: once the deadline has passed, ctx is done or about to be.
func ctxCause(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		<-ctx.Done()
	}
	return context.Cause(ctx)
}

// flows sends the encoded requests (msgs; offsets[i] is where query i's
// starts) with fresh xids and collects the replies.
func (s *Session) flows(ctx context.Context, msgs []byte, offsets []int) (results [][]Flow, err error) {
	if s.c == nil {
		if err := s.connect(ctx); err != nil {
			return nil, err
		}
	}
	nc := s.c.nc
	// Whatever goes wrong below leaves the connection in an unknown
	// state (a reply half read, xids out of step): never reuse it.
	// Neither when ctx ended as the call did: its AfterFunc may be about
	// to put a past deadline on the connection, under the next request.
	stop := func() bool { return true }
	defer func() {
		if !stop() || err != nil {
			s.drop()
		}
	}()
	pending := make(map[uint32]int, len(offsets))
	for i, off := range offsets {
		s.xid++
		if s.xid <= sessionHelloXid {
			s.xid = sessionHelloXid + 1
		}
		binary.BigEndian.PutUint32(msgs[off+4:], s.xid)
		pending[s.xid] = i
	}
	deadline, _ := ctx.Deadline() // zero: none, clearing the last call's
	if err := nc.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("openflow: set deadline on %s: %w", s.socket, err)
	}
	stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if cause := ctxCause(ctx, err); cause != nil {
			results, err = nil, fmt.Errorf("openflow: flow stats from %s: %w", s.socket, cause)
		}
	}()
	if _, err := nc.Write(msgs); err != nil {
		return nil, fmt.Errorf("openflow: send requests to %s: %w", s.socket, err)
	}
	return s.c.collect(sessionHelloXid, pending, len(offsets))
}

// sessionHelloXid is the HELLO's xid; requests use the ones after it.
const sessionHelloXid = 1

func (s *Session) connect(ctx context.Context) (err error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", s.socket)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("openflow: connect to %s: %w", s.socket, cause)
		}
		return fmt.Errorf("openflow: %w", err)
	}
	c := &conn{nc: nc, r: bufio.NewReader(nc), socket: s.socket}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		// ctx ended as the HELLO came: its AfterFunc may yet put a past
		// deadline on the connection, under the request. Do not keep it.
		if !stop() && err == nil {
			err = fmt.Errorf("openflow: hello from %s: %w", s.socket, context.Cause(ctx))
		}
		if err != nil {
			_ = nc.Close()
			return
		}
		s.c, s.xid = c, sessionHelloXid
	}()
	if _, werr := nc.Write(appendHello(nil, sessionHelloXid)); werr != nil {
		// A switch that refuses the session may have sent its HELLO or
		// error and hung up before the write: what it said explains
		// more than the broken pipe.
		if herr := c.hello(sessionHelloXid); herr != nil && !errors.Is(herr, io.EOF) {
			werr = herr
		}
		if cause := ctxCause(ctx, werr); cause != nil {
			werr = cause
		}
		return fmt.Errorf("openflow: hello to %s: %w", s.socket, werr)
	}
	if err := c.hello(sessionHelloXid); err != nil {
		if cause := ctxCause(ctx, err); cause != nil {
			return fmt.Errorf("openflow: hello from %s: %w", s.socket, cause)
		}
		return err
	}
	return nil
}
