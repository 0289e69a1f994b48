// Package openflow reads flow statistics from an Open vSwitch bridge over
// OpenFlow 1.3, natively.
//
// CNI CHECK uses it to confirm that ovn-controller installed the flows of a
// pod's port: the OVSDB's ovn-installed flag outlives the flows themselves
// (an ovs-vswitchd restart while ovn-controller is down empties the flow
// tables and leaves the flag set). CHECK runs often, so the package talks to
// the bridge's management socket (<ovs rundir>/<bridge>.mgmt) directly
// instead of forking ovs-ofctl for every call.
//
// Only the OFPMP_FLOW multipart request is implemented, with the match
// fields OVN's port flows are found by. Flow statistics match non-strictly:
// a flow is returned when its match is at least as specific as the
// request's, which is what "the flows of this port" means.
package openflow

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Match selects flows by what they match on. Zero fields are wildcards.
type Match struct {
	InPort   uint32           // OXM_OF_IN_PORT; 0 = any
	Metadata *uint64          // OXM_OF_METADATA (OVN: the logical datapath's tunnel key)
	Reg14    *uint32          // NXM_NX_REG14 (OVN: logical input port key)
	Reg15    *uint32          // NXM_NX_REG15 (OVN: logical output port key)
	EthSrc   net.HardwareAddr // OXM_OF_ETH_SRC
	EthDst   net.HardwareAddr // OXM_OF_ETH_DST
}

// Query is one flow-stats request.
type Query struct {
	Table *uint8 // nil = all tables (OFPTT_ALL)
	// OutPort, when non-zero, keeps only flows with an action that
	// outputs to this port (the request's out_port filter); 0 = OFPP_ANY.
	OutPort uint32
	Match   Match
}

// Flow is one flow entry from a reply.
type Flow struct {
	Table          uint8
	Priority       uint16
	Cookie         uint64
	Packets, Bytes uint64
	Duration       time.Duration
	// Key identifies the entry (table, priority and the raw match bytes),
	// so that results of several queries can be merged without counting
	// a flow twice: the same flow matches, say, both an in_port and an
	// eth_src query.
	Key string
}

// Error is an OFPT_ERROR the switch sent in answer to a request. Callers
// can tell a switch that rejected the query (errors.As) from one that could
// not be reached.
type Error struct {
	Type, Code uint16
}

func (e *Error) Error() string {
	name, ok := errorTypeNames[e.Type]
	if !ok {
		name = fmt.Sprintf("type %d", e.Type)
	}
	return fmt.Sprintf("switch error %s, code %d", name, e.Code)
}

// MaxQueries bounds the queries of one Flows call. They are written before
// any reply is read, so they must fit the socket's send buffer (a few
// hundred kilobytes; 256 queries take under 30 KiB): otherwise the write
// could block while the switch, its reply queue full, stops reading.
const MaxQueries = 256

// ErrNoOpenFlow13 is wrapped by the error Flows returns when the bridge
// does not allow OpenFlow 1.3; the message says which versions it allows.
var ErrNoOpenFlow13 = errors.New("bridge does not allow OpenFlow 1.3")

// SocketPath returns the management socket of bridge for an Open_vSwitch
// OVSDB endpoint of the form "unix:/dir/db.sock", that is "/dir/<bridge>.mgmt":
// ovs-vswitchd puts both in its run directory. A tcp: or ssl: endpoint says
// nothing about where ovs-vswitchd runs, so the caller must be told the
// path explicitly; that is an error here.
func SocketPath(ovsdbEndpoint, bridge string) (string, error) {
	if bridge == "" || strings.ContainsRune(bridge, '/') {
		return "", fmt.Errorf("openflow: invalid bridge name %q", bridge)
	}
	path, ok := strings.CutPrefix(ovsdbEndpoint, "unix:")
	if !ok || path == "" || strings.Contains(path, ",") {
		return "", fmt.Errorf("openflow: cannot derive the management socket of bridge %s from OVSDB endpoint %q: only a single unix: endpoint tells ovs-vswitchd's run directory", bridge, ovsdbEndpoint)
	}
	return filepath.Join(filepath.Dir(path), bridge+".mgmt"), nil
}

// Flows opens one connection to the management socket, does the HELLO
// exchange, sends each query and collects its reply (all multipart reply
// parts, OFPMPF_REPLY_MORE), and closes. results[i] answers queries[i].
// ctx bounds everything: its deadline applies to the dial and every read
// and write, and cancelling it interrupts a blocked read.
//
// The HELLO and all queries go out in one write, and the replies are read
// as they come: one round trip whatever the number of queries. At most
// MaxQueries fit one call.
func Flows(ctx context.Context, socket string, queries ...Query) ([][]Flow, error) {
	if len(queries) > MaxQueries {
		return nil, fmt.Errorf("openflow: %d queries in one call, at most %d", len(queries), MaxQueries)
	}
	// Encode first: a bad query is the caller's bug and needs no switch.
	const helloXid = 1
	msgs := appendHello(nil, helloXid)
	pending := make(map[uint32]int, len(queries))
	for i, q := range queries {
		xid := uint32(helloXid + 1 + i)
		var err error
		if msgs, err = appendFlowStatsRequest(msgs, xid, q); err != nil {
			return nil, fmt.Errorf("openflow: query %d: %w", i, err)
		}
		pending[xid] = i
	}

	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("openflow: %w", err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := nc.SetDeadline(dl); err != nil {
			return nil, fmt.Errorf("openflow: set deadline on %s: %w", socket, err)
		}
	}
	// A cancel without a deadline must still unblock a read.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c := &conn{nc: nc, r: bufio.NewReader(nc), socket: socket}
	results, err := c.run(msgs, helloXid, pending, len(queries))
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Every deadline on nc comes from ctx, so ctx is done or about
			// to be: its timer can fire a moment after the socket's.
			<-ctx.Done()
		}
		if ctxErr := context.Cause(ctx); ctxErr != nil {
			return nil, fmt.Errorf("openflow: flow stats from %s: %w", socket, ctxErr)
		}
		return nil, err
	}
	return results, nil
}

// conn is one OpenFlow session on a management socket.
type conn struct {
	nc     net.Conn
	r      *bufio.Reader
	socket string
}

// run sends msgs (the HELLO and the requests), checks the switch's HELLO,
// then reads until every pending request has its final reply part.
func (c *conn) run(msgs []byte, helloXid uint32, pending map[uint32]int, n int) ([][]Flow, error) {
	if _, err := c.nc.Write(msgs); err != nil {
		// A switch that refuses the session may have sent its HELLO or
		// error and hung up before the write: what it said explains
		// more than the broken pipe.
		if herr := c.hello(helloXid); herr != nil && !errors.Is(herr, io.EOF) {
			return nil, herr
		}
		return nil, fmt.Errorf("openflow: send requests: %w", err)
	}
	if err := c.hello(helloXid); err != nil {
		return nil, err
	}
	return c.collect(helloXid, pending, n)
}

// collect reads until every pending request (xid: index of its query) has
// its final reply part, answering the switch's echo requests meanwhile.
func (c *conn) collect(helloXid uint32, pending map[uint32]int, n int) ([][]Flow, error) {
	results := make([][]Flow, n)
	for len(pending) > 0 {
		h, body, err := c.read()
		if err != nil {
			return nil, err
		}
		switch h.Type {
		case typeEchoRequest:
			// Unanswered echoes make the switch drop the connection.
			reply := appendHeader(nil, typeEchoReply, h.Xid)
			reply, err = finishMessage(append(reply, body...), 0)
			if err != nil {
				return nil, fmt.Errorf("openflow: echo reply: %w", err)
			}
			if _, err := c.nc.Write(reply); err != nil {
				return nil, fmt.Errorf("openflow: send echo reply: %w", err)
			}
			continue
		case typeError:
			e, err := parseError(body)
			if err != nil {
				return nil, fmt.Errorf("openflow: %s: %w", c.socket, err)
			}
			// OVS sends HELLO_FAILED with xid 0, not the HELLO's, and
			// then resets the connection.
			if h.Xid == helloXid || e.Type == errTypeHelloFailed {
				return nil, c.helloError(body)
			}
			if i, ok := pending[h.Xid]; ok {
				return nil, fmt.Errorf("openflow: %s: query %d: %w", c.socket, i, e)
			}
		case typeMultipartReply:
			i, ok := pending[h.Xid]
			if !ok {
				continue
			}
			part, err := parseFlowStatsReply(body)
			if err != nil {
				return nil, fmt.Errorf("openflow: %s: reply to query %d: %w", c.socket, i, err)
			}
			results[i] = append(results[i], part.Flows...)
			if !part.More {
				delete(pending, h.Xid)
			}
		}
		// Anything else (port status, a late reply to someone else's
		// xid) is not ours to handle.
	}
	return results, nil
}

// hello reads the switch's HELLO and checks that it offers 1.3. OVS sends
// its HELLO as soon as the connection is accepted, before it reads ours, so
// the first message is a HELLO even when negotiation is going to fail.
func (c *conn) hello(xid uint32) error {
	h, body, err := c.readAny()
	if err != nil {
		return err
	}
	switch h.Type {
	case typeHello:
	case typeError:
		return c.helloError(body)
	default:
		return fmt.Errorf("openflow: %s: first message has type %d, want HELLO: %w", c.socket, h.Type, errMalformed)
	}
	versions, err := helloVersions(h, body)
	if err != nil {
		return fmt.Errorf("openflow: %s: %w", c.socket, err)
	}
	if versions&(1<<version13) == 0 {
		return c.versionError(versionNames(versions))
	}
	return nil
}

// helloError explains an OFPT_ERROR sent instead of, or after, the HELLO.
func (c *conn) helloError(body []byte) error {
	e, err := parseError(body)
	if err != nil {
		return fmt.Errorf("openflow: %s: hello: %w", c.socket, err)
	}
	if e.Type == errTypeHelloFailed {
		return c.versionError("")
	}
	return fmt.Errorf("openflow: %s: hello: %w", c.socket, e)
}

// versionError names the fix: the Bridge table's protocols column decides
// which versions the bridge's sockets accept.
// offered is "" when the switch only said that negotiation failed.
func (c *conn) versionError(offered string) error {
	bridge := strings.TrimSuffix(filepath.Base(c.socket), ".mgmt")
	if offered != "" {
		offered = " (it offers " + offered + ")"
	}
	return fmt.Errorf("openflow: %s: %w%s: add OpenFlow13 to the protocols column of Bridge %s",
		c.socket, ErrNoOpenFlow13, offered, bridge)
}

// read returns the next OpenFlow 1.3 message.
func (c *conn) read() (header, []byte, error) {
	h, body, err := c.readAny()
	if err != nil {
		return h, nil, err
	}
	// The switch errors in the version it fell back to when negotiation
	// fails; any other message must be 1.3 or it is not parsed right.
	if h.Version != version13 && h.Type != typeError {
		return h, nil, fmt.Errorf("openflow: %s: message of version %#x after negotiating 1.3: %w", c.socket, h.Version, errMalformed)
	}
	return h, body, nil
}

// readAny returns the next message of any version.
func (c *conn) readAny() (header, []byte, error) {
	var hb [headerLen]byte
	if _, err := io.ReadFull(c.r, hb[:]); err != nil {
		return header{}, nil, c.readError(err)
	}
	h := parseHeader(hb[:])
	if h.Length < headerLen {
		return h, nil, fmt.Errorf("openflow: %s: message length %d is shorter than its header: %w", c.socket, h.Length, errMalformed)
	}
	body := make([]byte, int(h.Length)-headerLen)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return h, nil, c.readError(err)
	}
	return h, body, nil
}

// readError names the socket, which a net.OpError already does but an EOF
// (the switch hung up, as OVS does after a failed negotiation) does not.
func (c *conn) readError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("openflow: %s closed the connection: %w", c.socket, err)
	}
	return fmt.Errorf("openflow: read: %w", err)
}
