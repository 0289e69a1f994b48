package openflow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// The tests after the unit tests run against a real ovs-vswitchd: the
// sandbox's node, on bridges each test makes for itself, plus the br-int
// that ovn-controller programs.
var cluster *sandbox.Cluster

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, sandbox.Options{Nodes: 1}, func(c *sandbox.Cluster) { cluster = c }))
}

func u8(v uint8) *uint8    { return &v }
func u32(v uint32) *uint32 { return &v }
func u64(v uint64) *uint64 { return &v }

func mac(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	a, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// unhex decodes hex with spaces allowed, so expected bytes can be laid
// out field by field. The strings are the tests' own constants: a typo
// panics.
func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// ---- Unit tests: encoding and parsing, no switch. ----

func TestEncodeMatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match Match
		want  string // ofp_match: type, length, OXM TLVs, padding
	}{
		{"empty", Match{}, "0001 0004 00000000"},
		{"in_port", Match{InPort: 5}, "0001 000c 80000004 00000005 00000000"},
		{"metadata", Match{Metadata: u64(0x0102030405060708)}, "0001 0010 80000408 0102030405060708"},
		{"reg14", Match{Reg14: u32(0xa1b2c3d4)}, "0001 000c 00011c04 a1b2c3d4 00000000"},
		{"reg15", Match{Reg15: u32(3)}, "0001 000c 00011e04 00000003 00000000"},
		{"eth_src", Match{EthSrc: mac(t, "0a:58:00:00:00:01")}, "0001 000e 80000806 0a5800000001 0000"},
		{"eth_dst", Match{EthDst: mac(t, "0a:58:00:00:00:02")}, "0001 000e 80000606 0a5800000002 0000"},
		{"zero values are matched, not wildcards", Match{Metadata: u64(0), Reg14: u32(0)},
			"0001 0018 80000408 0000000000000000 00011c04 00000000"},
		{"all fields in struct order", Match{
			InPort: 1, Metadata: u64(0x2a), Reg14: u32(3), Reg15: u32(4),
			EthSrc: mac(t, "0a:58:00:00:00:01"), EthDst: mac(t, "0a:58:00:00:00:02"),
		}, "0001 003c 80000004 00000001 80000408 000000000000002a 00011c04 00000003 00011e04 00000004" +
			" 80000806 0a5800000001 80000606 0a5800000002 00000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := appendMatch(nil, tc.match)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(tc.want); !bytes.Equal(got, want) {
				t.Errorf("match\n got %x\nwant %x", got, want)
			}
			if len(got)%8 != 0 {
				t.Errorf("match of %d bytes is not padded to 8", len(got))
			}
		})
	}
}

func TestEncodeMatchRejectsBadMAC(t *testing.T) {
	for _, m := range []Match{
		{EthSrc: net.HardwareAddr{1, 2, 3}},
		{EthDst: net.HardwareAddr{1, 2, 3, 4, 5, 6, 7, 8}},
	} {
		if _, err := appendMatch(nil, m); err == nil {
			t.Errorf("appendMatch(%+v) accepted a MAC that is not 6 bytes", m)
		}
		if _, err := Flows(context.Background(), "/nonexistent.mgmt", Query{Match: m}); err == nil || !strings.Contains(err.Error(), "query 0") {
			t.Errorf("Flows with %+v: %v, want a query 0 error before dialling", m, err)
		}
	}
}

func TestFlowsRejectsTooManyQueries(t *testing.T) {
	_, err := Flows(context.Background(), "/nonexistent.mgmt", make([]Query, MaxQueries+1)...)
	if err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("error %v, want one about the query limit before dialling", err)
	}
}

func TestEncodeFlowStatsRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    Query
		want string
	}{
		{"defaults: all tables, any port", Query{},
			"04 12 0038 00000007" + // header: 1.3, MULTIPART_REQUEST, 56 bytes, xid 7
				" 0001 0000 00000000" + // OFPMP_FLOW, flags, pad
				" ff 000000 ffffffff ffffffff 00000000" + // OFPTT_ALL, pad, OFPP_ANY, OFPG_ANY, pad
				" 0000000000000000 0000000000000000" + // cookie, cookie_mask
				" 0001 0004 00000000"}, // empty match
		{"table, out_port and match", Query{Table: u8(10), OutPort: 7, Match: Match{InPort: 5}},
			"04 12 0040 00000007 0001 0000 00000000" +
				" 0a 000000 00000007 ffffffff 00000000" +
				" 0000000000000000 0000000000000000" +
				" 0001 000c 80000004 00000005 00000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := appendFlowStatsRequest(nil, 7, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(tc.want); !bytes.Equal(got, want) {
				t.Errorf("request\n got %x\nwant %x", got, want)
			}
		})
	}
}

func TestEncodeHello(t *testing.T) {
	// Version bitmap element with bit 4 (OpenFlow 1.3) alone.
	want := unhex("04 00 0010 00000001 0001 0008 00000010")
	if got := appendHello(nil, 1); !bytes.Equal(got, want) {
		t.Errorf("hello\n got %x\nwant %x", got, want)
	}
}

func TestHelloVersions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint8
		body    string
		want    uint64
		names   string
	}{
		{"OVS default: bitmap 1.0 to 1.5", 6, "0001 0008 0000007e", 0x7e, "OpenFlow10,OpenFlow11,OpenFlow12,OpenFlow13,OpenFlow14,OpenFlow15"},
		{"no bitmap: every version up to the header's", 1, "", 0x03, "OpenFlow10"},
		{"bitmap after an unknown element", 6, "0009 0005 aa 000000 0001 0008 00000060", 0x60, "OpenFlow14,OpenFlow15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := helloVersions(header{Version: tc.version}, unhex(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("versions %#x, want %#x", got, tc.want)
			}
			if n := versionNames(got); n != tc.names {
				t.Errorf("names %q, want %q", n, tc.names)
			}
		})
	}
	if _, err := helloVersions(header{Version: 4}, unhex("0001 0000")); err == nil {
		t.Error("a hello element of length 0 was accepted")
	}
}

// flowStats builds one ofp_flow_stats entry; match is an unpadded ofp_match
// and instructions are appended after its padding.
func flowStats(table uint8, priority uint16, cookie, packets, bytes uint64, dur time.Duration, match, instructions []byte) []byte {
	b := make([]byte, 2, 128)
	b = append(b, table, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(dur/time.Second))
	b = binary.BigEndian.AppendUint32(b, uint32(dur%time.Second))
	b = binary.BigEndian.AppendUint16(b, priority)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // idle, hard, flags, pad
	b = binary.BigEndian.AppendUint64(b, cookie)
	b = binary.BigEndian.AppendUint64(b, packets)
	b = binary.BigEndian.AppendUint64(b, bytes)
	b = append(b, match...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	b = append(b, instructions...)
	binary.BigEndian.PutUint16(b, uint16(len(b)))
	return b
}

// multipartBody is what follows the header of a flow stats reply part.
func multipartBody(more bool, entries ...[]byte) []byte {
	flags := uint16(0)
	if more {
		flags = multipartReplyMore
	}
	b := binary.BigEndian.AppendUint16(nil, multipartFlow)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = append(b, 0, 0, 0, 0)
	for _, e := range entries {
		b = append(b, e...)
	}
	return b
}

var (
	inPort5Match = []byte{0, 1, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, 5}
	reg15Match   = []byte{0, 1, 0, 12, 0, 1, 0x1e, 4, 0, 0, 0, 4}
	// An apply-actions instruction with output:7, which must be skipped.
	outputInstruction = []byte{0, 4, 0, 24, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 7, 0xff, 0xff, 0, 0, 0, 0, 0, 0}
)

func TestParseFlowStatsReply(t *testing.T) {
	e1 := flowStats(0, 100, 0x1, 3, 180, 1500*time.Millisecond, inPort5Match, outputInstruction)
	e2 := flowStats(10, 50, 0xdeadbeef, 0, 0, 0, reg15Match, nil)
	e3 := flowStats(10, 50, 0x3, 0, 0, 0, inPort5Match, nil)
	r, err := parseFlowStatsReply(multipartBody(true, e1, e2, e3))
	if err != nil {
		t.Fatal(err)
	}
	if !r.More {
		t.Error("REPLY_MORE was not seen")
	}
	if len(r.Flows) != 3 {
		t.Fatalf("%d flows, want 3", len(r.Flows))
	}
	f := r.Flows[0]
	if f.Table != 0 || f.Priority != 100 || f.Cookie != 1 || f.Packets != 3 || f.Bytes != 180 || f.Duration != 1500*time.Millisecond {
		t.Errorf("first flow %+v", f)
	}
	if f := r.Flows[1]; f.Table != 10 || f.Priority != 50 || f.Cookie != 0xdeadbeef {
		t.Errorf("second flow %+v", f)
	}
	keys := map[string]bool{}
	for _, f := range r.Flows {
		keys[f.Key] = true
	}
	if len(keys) != 3 {
		t.Errorf("%d distinct keys for 3 distinct flows", len(keys))
	}
	// The key ignores counters and cookie: the same entry in another reply
	// (read later, so with other counts) merges with the first.
	again, err := parseFlowStatsReply(multipartBody(false, flowStats(0, 100, 0x9, 7, 420, time.Hour, inPort5Match, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if again.More || again.Flows[0].Key != r.Flows[0].Key {
		t.Errorf("same table, priority and match gave key %q, want %q (more=%v)", again.Flows[0].Key, r.Flows[0].Key, again.More)
	}
	empty, err := parseFlowStatsReply(multipartBody(false))
	if err != nil || len(empty.Flows) != 0 {
		t.Errorf("empty reply: %+v, %v", empty, err)
	}
}

func TestParseFlowStatsReplyMalformed(t *testing.T) {
	good := flowStats(0, 1, 1, 0, 0, 0, inPort5Match, nil)
	withLength := func(n uint16) []byte {
		e := slices.Clone(good)
		binary.BigEndian.PutUint16(e, n)
		return e
	}
	withMatch := func(typ, n uint16) []byte {
		e := slices.Clone(good)
		binary.BigEndian.PutUint16(e[flowStatsFixedLen:], typ)
		binary.BigEndian.PutUint16(e[flowStatsFixedLen+2:], n)
		return e
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"no multipart header", []byte{0, 1, 0}},
		{"not a flow stats reply", append([]byte{0, 2, 0, 0, 0, 0, 0, 0}, good...)},
		{"entry length 0", multipartBody(false, withLength(0))},
		{"entry length below the fixed part", multipartBody(false, withLength(40))},
		{"entry length beyond the buffer", multipartBody(false, withLength(uint16(len(good)+8)))},
		{"entry truncated", multipartBody(false, good[:len(good)-1])},
		{"one trailing byte", multipartBody(false, good, []byte{0})},
		{"second entry truncated", multipartBody(false, good, good[:20])},
		{"match length beyond the entry", multipartBody(false, withMatch(matchTypeOXM, 200))},
		{"match length below its header", multipartBody(false, withMatch(matchTypeOXM, 2))},
		{"standard match type", multipartBody(false, withMatch(0, 12))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseFlowStatsReply(tc.body)
			if err == nil {
				t.Fatalf("parsed into %+v", r)
			}
			if !errors.Is(err, errMalformed) {
				t.Errorf("error %v does not wrap errMalformed", err)
			}
		})
	}
}

func TestSocketPath(t *testing.T) {
	for _, tc := range []struct {
		endpoint, bridge, want string
	}{
		{"unix:/var/run/openvswitch/db.sock", "br-int", "/var/run/openvswitch/br-int.mgmt"},
		{"unix:/tmp/sb/node0/node0-ovsdb.sock", "br-phy", "/tmp/sb/node0/br-phy.mgmt"},
		{"unix:db.sock", "br-int", "br-int.mgmt"},
		{"tcp:127.0.0.1:6640", "br-int", ""},
		{"ssl:127.0.0.1:6640", "br-int", ""},
		{"punix:/var/run/openvswitch/db.sock", "br-int", ""},
		{"unix:", "br-int", ""},
		{"unix:/a/db.sock,unix:/b/db.sock", "br-int", ""},
		{"unix:/var/run/openvswitch/db.sock", "", ""},
		{"unix:/var/run/openvswitch/db.sock", "../etc", ""},
	} {
		got, err := SocketPath(tc.endpoint, tc.bridge)
		if tc.want == "" {
			if err == nil {
				t.Errorf("SocketPath(%q, %q) = %q, want an error", tc.endpoint, tc.bridge, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("SocketPath(%q, %q) = %q, %v; want %q", tc.endpoint, tc.bridge, got, err, tc.want)
		}
	}
}

// ---- A scripted switch on a unix socket: the session logic. ----

// message builds an OpenFlow 1.3 message.
func message(typ uint8, xid uint32, body []byte) []byte {
	b := appendHeader(nil, typ, xid)
	b, _ = finishMessage(append(b, body...), 0)
	return b
}

func readMessage(r *bufio.Reader) (header, []byte, error) {
	var hb [headerLen]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return header{}, nil, err
	}
	h := parseHeader(hb[:])
	body := make([]byte, int(h.Length)-headerLen)
	_, err := io.ReadFull(r, body)
	return h, body, err
}

var ovsHello = message(typeHello, 0x99, unhex("0001 0008 0000007e"))

// fakeSwitch serves one connection on a fresh socket with script and
// returns the socket's path. script's error fails the test.
func fakeSwitch(t *testing.T, script func(c net.Conn, r *bufio.Reader) error) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "br-fake.mgmt")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- script(c, bufio.NewReader(c))
	}()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("fake switch: %v", err)
		}
	})
	return sock
}

// expectHelloAndRequests reads the client's HELLO and n flow stats
// requests and returns the requests' xids.
func expectHelloAndRequests(r *bufio.Reader, n int) ([]uint32, error) {
	h, _, err := readMessage(r)
	if err != nil {
		return nil, err
	}
	if h.Type != typeHello || h.Version != version13 {
		return nil, fmt.Errorf("first message %+v, want a 1.3 HELLO", h)
	}
	var xids []uint32
	for range n {
		h, body, err := readMessage(r)
		if err != nil {
			return nil, err
		}
		if h.Type != typeMultipartRequest || binary.BigEndian.Uint16(body) != multipartFlow {
			return nil, fmt.Errorf("message %+v, want a flow stats request", h)
		}
		xids = append(xids, h.Xid)
	}
	return xids, nil
}

func TestFlowsFakeSwitchMultipart(t *testing.T) {
	a := flowStats(0, 100, 1, 0, 0, 0, inPort5Match, outputInstruction)
	b := flowStats(10, 50, 2, 0, 0, 0, reg15Match, nil)
	c := flowStats(20, 10, 3, 0, 0, 0, reg15Match, nil)
	echoSeen := make(chan []byte, 1)
	sock := fakeSwitch(t, func(conn net.Conn, r *bufio.Reader) error {
		if _, err := conn.Write(ovsHello); err != nil {
			return err
		}
		xids, err := expectHelloAndRequests(r, 2)
		if err != nil {
			return err
		}
		var out []byte
		out = append(out, message(typeEchoRequest, 0x4242, []byte("ping"))...)
		// A port status and a reply for an xid nobody asked for: skipped.
		out = append(out, message(12, 0, make([]byte, 72))...)
		out = append(out, message(typeMultipartReply, 0x7777, multipartBody(false, c))...)
		// Replies interleave: query 1's only part arrives between query 0's.
		out = append(out, message(typeMultipartReply, xids[0], multipartBody(true, a))...)
		out = append(out, message(typeMultipartReply, xids[1], multipartBody(false, c))...)
		out = append(out, message(typeMultipartReply, xids[0], multipartBody(true))...)
		out = append(out, message(typeMultipartReply, xids[0], multipartBody(false, b))...)
		if _, err := conn.Write(out); err != nil {
			return err
		}
		h, body, err := readMessage(r)
		if err != nil {
			return fmt.Errorf("no echo reply: %w", err)
		}
		if h.Type != typeEchoReply || h.Xid != 0x4242 {
			return fmt.Errorf("got %+v, want an echo reply with xid 0x4242", h)
		}
		echoSeen <- body
		_, _, err = readMessage(r)
		if err != io.EOF {
			return fmt.Errorf("client did not close the connection: %v", err)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := Flows(ctx, sock, Query{Match: Match{InPort: 5}}, Query{Table: u8(20)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || len(res[0]) != 2 || len(res[1]) != 1 {
		t.Fatalf("results %+v, want 2 flows then 1", res)
	}
	if res[0][0].Cookie != 1 || res[0][1].Cookie != 2 || res[1][0].Cookie != 3 {
		t.Errorf("cookies %d %d %d, want 1 2 3", res[0][0].Cookie, res[0][1].Cookie, res[1][0].Cookie)
	}
	select {
	case body := <-echoSeen:
		if string(body) != "ping" {
			t.Errorf("echo reply body %q, want %q", body, "ping")
		}
	case <-time.After(5 * time.Second):
		t.Error("no echo reply")
	}
}

func TestFlowsFakeSwitchFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		// reply is what the switch sends after reading the requests,
		// given the xid of the first one; its HELLO comes first unless
		// noHello.
		reply   func(xid uint32) []byte
		noHello bool
		check   func(t *testing.T, err error)
	}{
		{name: "error for the request", reply: func(xid uint32) []byte {
			return message(typeError, xid, unhex("0004 0006 deadbeef")) // BAD_MATCH, BAD_FIELD
		}, check: func(t *testing.T, err error) {
			var e *Error
			if !errors.As(err, &e) || e.Type != 4 || e.Code != 6 {
				t.Errorf("error %v, want *Error BAD_MATCH code 6", err)
			}
			if !strings.Contains(err.Error(), "BAD_MATCH") {
				t.Errorf("error %q does not name the type", err)
			}
		}},
		{name: "malformed part", reply: func(xid uint32) []byte {
			e := flowStats(0, 1, 1, 0, 0, 0, inPort5Match, nil)
			binary.BigEndian.PutUint16(e, 0)
			return message(typeMultipartReply, xid, multipartBody(true, e))
		}, check: func(t *testing.T, err error) {
			if !errors.Is(err, errMalformed) {
				t.Errorf("error %v, want errMalformed", err)
			}
		}},
		{name: "message length below the header", reply: func(xid uint32) []byte {
			return []byte{4, typeMultipartReply, 0, 4, 0, 0, 0, byte(xid)}
		}, check: func(t *testing.T, err error) {
			if !errors.Is(err, errMalformed) {
				t.Errorf("error %v, want errMalformed", err)
			}
		}},
		{name: "reply of another version", reply: func(xid uint32) []byte {
			m := message(typeMultipartReply, xid, multipartBody(false))
			m[0] = 1
			return m
		}, check: func(t *testing.T, err error) {
			if !errors.Is(err, errMalformed) {
				t.Errorf("error %v, want errMalformed", err)
			}
		}},
		{name: "hang-up mid reply", reply: func(xid uint32) []byte {
			return message(typeMultipartReply, xid, multipartBody(true))
		}, check: func(t *testing.T, err error) {
			if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "br-fake.mgmt closed") {
				t.Errorf("error %v, want EOF naming the socket", err)
			}
		}},
		{name: "hello failed after the hello", reply: func(uint32) []byte {
			// What OVS sends when negotiation fails: HELLO_FAILED with xid 0.
			return message(typeError, 0, append(unhex("0000 0000"), "We support version 0x01"...))
		}, check: func(t *testing.T, err error) {
			if !errors.Is(err, ErrNoOpenFlow13) {
				t.Errorf("error %v, want ErrNoOpenFlow13", err)
			}
		}},
		{name: "hello failed", noHello: true, reply: func(uint32) []byte {
			return message(typeError, 1, unhex("0000 0000"))
		}, check: func(t *testing.T, err error) {
			if !errors.Is(err, ErrNoOpenFlow13) || !strings.Contains(err.Error(), "protocols column of Bridge br-fake") {
				t.Errorf("error %v, want ErrNoOpenFlow13 naming the protocols column", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := fakeSwitch(t, func(conn net.Conn, r *bufio.Reader) error {
				if !tc.noHello {
					if _, err := conn.Write(ovsHello); err != nil {
						return err
					}
				}
				xids, err := expectHelloAndRequests(r, 1)
				if err != nil {
					return err
				}
				_, err = conn.Write(tc.reply(xids[0]))
				return err
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := Flows(ctx, sock, Query{})
			if err == nil {
				t.Fatalf("Flows = %+v, want an error", res)
			}
			if ctx.Err() != nil {
				t.Fatalf("Flows hung until the deadline: %v", err)
			}
			tc.check(t, err)
		})
	}
}

func TestFlowsFakeSwitchOldVersion(t *testing.T) {
	// A switch limited to OpenFlow 1.0 says so in its HELLO (no bitmap):
	// Flows stops there, with the fix in the message.
	sock := fakeSwitch(t, func(conn net.Conn, r *bufio.Reader) error {
		h := message(typeHello, 0, nil)
		h[0] = 1
		_, err := conn.Write(h)
		return err
	})
	_, err := Flows(context.Background(), sock, Query{})
	if !errors.Is(err, ErrNoOpenFlow13) || !strings.Contains(err.Error(), "it offers OpenFlow10") {
		t.Errorf("error %v, want ErrNoOpenFlow13 saying the switch offers OpenFlow10", err)
	}
}

func TestFlowsMissingSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "br-none.mgmt")
	_, err := Flows(context.Background(), sock, Query{})
	if err == nil || !strings.Contains(err.Error(), sock) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want one naming %s and wrapping ENOENT", err, sock)
	}
}

func TestFlowsContext(t *testing.T) {
	// The switch accepts and then says nothing: only ctx ends the wait.
	silent := func(t *testing.T) string {
		return fakeSwitch(t, func(conn net.Conn, r *bufio.Reader) error {
			_, _ = io.Copy(io.Discard, r)
			return nil
		})
	}
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Flows(ctx, silent(t), Query{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("returned after %s", d)
		}
	})
	t.Run("cancel without deadline", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := Flows(ctx, silent(t), Query{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want Canceled", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("returned after %s", d)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		sock := filepath.Join(t.TempDir(), "br-x.mgmt")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := Flows(ctx, sock, Query{}); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want Canceled", err)
		}
	})
}

// ---- Against a real ovs-vswitchd. ----

func ofctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := cluster.Nodes[0].Run(append([]string{"ovs-ofctl"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func vsctl(t testing.TB, args ...string) string {
	t.Helper()
	n := cluster.Nodes[0]
	out, err := n.Run(append([]string{"ovs-vsctl", "--db=" + n.OVS}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// testBridge adds a userspace bridge without a default NORMAL flow (secure
// fail mode) and returns its management socket.
func testBridge(t testing.TB, name string, settings ...string) string {
	t.Helper()
	args := []string{"add-br", name, "--", "set", "bridge", name, "datapath_type=netdev", "fail-mode=secure"}
	vsctl(t, append(args, settings...)...)
	t.Cleanup(func() { vsctl(t, "del-br", name) })
	sock, err := SocketPath(cluster.Nodes[0].OVS, name)
	if err != nil {
		t.Fatal(err)
	}
	// ovs-vsctl without --no-wait returns once ovs-vswitchd has made the
	// bridge, and so its socket.
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("no management socket next to the OVSDB socket: %v", err)
	}
	return sock
}

var (
	cookieRE    = regexp.MustCompile(`cookie=0x([0-9a-f]+)`)
	countersRE  = regexp.MustCompile(`cookie=0x([0-9a-f]+),.* n_packets=(\d+), n_bytes=(\d+)`)
	flowCountRE = regexp.MustCompile(`flow_count=(\d+)`)
)

// ofctlCookies returns the cookies ovs-ofctl dump-flows lists for match.
func ofctlCookies(t *testing.T, sock, match string) []uint64 {
	t.Helper()
	args := []string{"dump-flows", "unix:" + sock}
	if match != "" {
		args = append(args, match)
	}
	var cookies []uint64
	for _, m := range cookieRE.FindAllStringSubmatch(ofctl(t, args...), -1) {
		c, _ := strconv.ParseUint(m[1], 16, 64)
		cookies = append(cookies, c)
	}
	slices.Sort(cookies)
	return cookies
}

// ofctlCount returns ovs-ofctl dump-aggregate's flow_count for match.
func ofctlCount(t testing.TB, sock, match string) int {
	t.Helper()
	args := []string{"dump-aggregate", "unix:" + sock}
	if match != "" {
		args = append(args, match)
	}
	out := ofctl(t, args...)
	m := flowCountRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no flow_count in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func cookies(flows []Flow) []uint64 {
	var c []uint64
	for _, f := range flows {
		c = append(c, f.Cookie)
	}
	slices.Sort(c)
	return c
}

// testFlows has one flow per cookie; the comments say what each one is
// there to be found by.
type testFlow struct {
	cookie   uint64
	table    uint8
	priority uint16
	spec     string
}

var testFlows = []testFlow{
	{1, 0, 100, "in_port=5,dl_src=0a:58:00:00:00:01,actions=set_field:0x2a->metadata,set_field:3->reg14,resubmit(,10)"}, // in_port + eth_src
	{2, 0, 90, "in_port=5,actions=output:7"},                                       // in_port, out_port
	{3, 10, 50, "metadata=0x2a,reg14=3,actions=output:8"},                          // other table, metadata, reg14
	{4, 10, 40, "metadata=0x2a,reg15=4,dl_dst=0a:58:00:00:00:02,actions=output:7"}, // reg15, eth_dst, out_port
	{5, 20, 10, "reg15=4,actions=drop"},                                            // reg15 in a third table
	{6, 0, 0, "actions=drop"},                                                      // matches nothing specific
}

func addTestFlows(t testing.TB, sock string) {
	t.Helper()
	var lines []string
	for _, f := range testFlows {
		lines = append(lines, fmt.Sprintf("cookie=%#x,table=%d,priority=%d,%s", f.cookie, f.table, f.priority, f.spec))
	}
	file := filepath.Join(t.TempDir(), "flows")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ofctl(t, "add-flows", "unix:"+sock, file)
}

func TestFlowsRealSwitch(t *testing.T) {
	sock := testBridge(t, "br-oftest")
	addTestFlows(t, sock)
	// One packet from in_port 5 through flows 1 and 3, so counters are
	// non-zero somewhere; OVS credits packet-out through OFPP_TABLE to the
	// flows it hits.
	frame := "0a58000000020a58000000010800" + strings.Repeat("00", 46)
	ofctl(t, "-O", "OpenFlow13", "packet-out", "unix:"+sock, "in_port=5 packet="+frame+" actions=table")

	for _, tc := range []struct {
		name  string
		q     Query
		ofctl string // the same selection for ovs-ofctl
		want  []uint64
	}{
		{"everything", Query{}, "", []uint64{1, 2, 3, 4, 5, 6}},
		{"in_port", Query{Match: Match{InPort: 5}}, "in_port=5", []uint64{1, 2}},
		{"in_port in table 0", Query{Table: u8(0), Match: Match{InPort: 5}}, "table=0,in_port=5", []uint64{1, 2}},
		{"in_port in table 10", Query{Table: u8(10), Match: Match{InPort: 5}}, "table=10,in_port=5", nil},
		{"table 10", Query{Table: u8(10)}, "table=10", []uint64{3, 4}},
		{"metadata", Query{Match: Match{Metadata: u64(0x2a)}}, "metadata=0x2a", []uint64{3, 4}},
		{"reg14", Query{Match: Match{Reg14: u32(3)}}, "reg14=3", []uint64{3}},
		{"reg15", Query{Match: Match{Reg15: u32(4)}}, "reg15=4", []uint64{4, 5}},
		{"reg15 in table 20", Query{Table: u8(20), Match: Match{Reg15: u32(4)}}, "table=20,reg15=4", []uint64{5}},
		{"metadata and reg14", Query{Match: Match{Metadata: u64(0x2a), Reg14: u32(3)}}, "metadata=0x2a,reg14=3", []uint64{3}},
		{"eth_src", Query{Match: Match{EthSrc: mac(t, "0a:58:00:00:00:01")}}, "dl_src=0a:58:00:00:00:01", []uint64{1}},
		{"eth_dst", Query{Match: Match{EthDst: mac(t, "0a:58:00:00:00:02")}}, "dl_dst=0a:58:00:00:00:02", []uint64{4}},
		{"out_port", Query{OutPort: 7}, "out_port=7", []uint64{2, 4}},
		{"out_port and table", Query{Table: u8(0), OutPort: 7}, "table=0,out_port=7", []uint64{2}},
		{"no such port", Query{Match: Match{InPort: 6}}, "in_port=6", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := Flows(ctx, sock, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := cookies(res[0]); !slices.Equal(got, tc.want) {
				t.Errorf("Flows found cookies %v, want %v", got, tc.want)
			}
			if got := ofctlCookies(t, sock, tc.ofctl); !slices.Equal(got, tc.want) {
				t.Errorf("ovs-ofctl dump-flows %s found cookies %v, want %v", tc.ofctl, got, tc.want)
			}
			if n := ofctlCount(t, sock, tc.ofctl); n != len(res[0]) {
				t.Errorf("ovs-ofctl dump-aggregate %s counts %d flows, Flows %d", tc.ofctl, n, len(res[0]))
			}
		})
	}

	// Table, priority and counters agree with the spec and ovs-ofctl.
	res, err := Flows(context.Background(), sock, Query{})
	if err != nil {
		t.Fatal(err)
	}
	counters := map[uint64][2]uint64{}
	for _, m := range countersRE.FindAllStringSubmatch(ofctl(t, "dump-flows", "unix:"+sock), -1) {
		c, _ := strconv.ParseUint(m[1], 16, 64)
		p, _ := strconv.ParseUint(m[2], 10, 64)
		b, _ := strconv.ParseUint(m[3], 10, 64)
		counters[c] = [2]uint64{p, b}
	}
	for _, f := range res[0] {
		i := slices.IndexFunc(testFlows, func(tf testFlow) bool { return tf.cookie == f.Cookie })
		if i < 0 {
			t.Errorf("unexpected flow %+v", f)
			continue
		}
		if tf := testFlows[i]; f.Table != tf.table || f.Priority != tf.priority {
			t.Errorf("flow %d in table %d at priority %d, want table %d priority %d", f.Cookie, f.Table, f.Priority, tf.table, tf.priority)
		}
		if c := counters[f.Cookie]; f.Packets != c[0] || f.Bytes != c[1] {
			t.Errorf("flow %d: %d packets %d bytes, ovs-ofctl says %d and %d", f.Cookie, f.Packets, f.Bytes, c[0], c[1])
		}
		wantPackets := uint64(0)
		if f.Cookie == 1 || f.Cookie == 3 {
			wantPackets = 1
		}
		if f.Packets != wantPackets {
			t.Errorf("flow %d saw %d packets, want %d", f.Cookie, f.Packets, wantPackets)
		}
		if f.Duration <= 0 || f.Duration > time.Minute {
			t.Errorf("flow %d has duration %s", f.Cookie, f.Duration)
		}
	}

	// Several queries on one connection, merged by Key: flow 1 is found
	// by both its in_port and its eth_src, and must count once.
	res, err = Flows(context.Background(), sock,
		Query{Match: Match{InPort: 5}},
		Query{Match: Match{EthSrc: mac(t, "0a:58:00:00:00:01")}},
		Query{Table: u8(10)})
	if err != nil {
		t.Fatal(err)
	}
	merged := map[string]uint64{}
	for _, r := range res {
		for _, f := range r {
			merged[f.Key] = f.Cookie
		}
	}
	var got []uint64
	for _, c := range merged {
		got = append(got, c)
	}
	slices.Sort(got)
	if want := []uint64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("merged cookies %v, want %v", got, want)
	}
}

func TestFlowsManyFlowsMultipart(t *testing.T) {
	sock := testBridge(t, "br-ofmany")
	// 3000 entries of 64 bytes each cannot fit one 64 KiB message, so the
	// reply has to come in several REPLY_MORE parts.
	const n = 3000
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "table=30,priority=1,reg15=%d,actions=drop\n", i)
	}
	file := filepath.Join(t.TempDir(), "flows")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ofctl(t, "add-flows", "unix:"+sock, file)
	res, err := Flows(context.Background(), sock, Query{Table: u8(30)}, Query{Match: Match{Reg15: u32(1234)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0]) != n || ofctlCount(t, sock, "table=30") != n {
		t.Errorf("%d flows, want %d", len(res[0]), n)
	}
	keys := map[string]bool{}
	for _, f := range res[0] {
		keys[f.Key] = true
	}
	if len(keys) != n {
		t.Errorf("%d distinct keys for %d flows", len(keys), n)
	}
	if len(res[1]) != 1 || !keys[res[1][0].Key] {
		t.Errorf("reg15=1234 found %+v, want one of the table's flows", res[1])
	}

	// As many queries as one call takes, pipelined on one connection:
	// each reply lands in its own slot.
	qs := make([]Query, MaxQueries)
	for i := range qs {
		qs[i] = Query{Table: u8(30), Match: Match{Reg15: u32(uint32(i + 1))}}
	}
	res, err = Flows(context.Background(), sock, qs...)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, r := range res {
		if len(r) != 1 || seen[r[0].Key] {
			t.Fatalf("query %d (reg15=%d) found %+v, want one flow of its own", i, i+1, r)
		}
		seen[r[0].Key] = true
	}
}

func TestFlowsBridgeWithoutOpenFlow13(t *testing.T) {
	for _, protocols := range []string{"OpenFlow10", "OpenFlow14,OpenFlow15"} {
		t.Run(protocols, func(t *testing.T) {
			name := "br-ofold"
			sock := testBridge(t, name, "protocols="+protocols)
			_, err := Flows(context.Background(), sock, Query{})
			if !errors.Is(err, ErrNoOpenFlow13) || !strings.Contains(err.Error(), "protocols column of Bridge "+name) {
				t.Errorf("error %v, want ErrNoOpenFlow13 naming the bridge's protocols column", err)
			}
			t.Log(err)
		})
	}
}

// TestFlowsBrInt reads the flows ovn-controller installed on the node's
// br-int, whose protocols column OVN leaves as it finds it.
func TestFlowsBrInt(t *testing.T) {
	sock, err := SocketPath(cluster.Nodes[0].OVS, "br-int")
	if err != nil {
		t.Fatal(err)
	}
	// What the switch's own HELLO offers, before any negotiation.
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	h, body, err := readMessage(bufio.NewReader(nc))
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	offered, err := helloVersions(h, body)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("br-int protocols column %s; its HELLO (version %#x) offers %s",
		vsctl(t, "get", "bridge", "br-int", "protocols"), h.Version, versionNames(offered))
	// ovn-controller may still be adding flows: counts settle quickly.
	var got, want int
	for range 20 {
		res, err := Flows(context.Background(), sock, Query{})
		if err != nil {
			t.Fatal(err)
		}
		got, want = len(res[0]), ofctlCount(t, sock, "")
		if got == want {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != want || got == 0 {
		t.Errorf("Flows found %d flows on br-int, ovs-ofctl dump-aggregate %d", got, want)
	}
	t.Logf("%d flows on br-int", got)
}

func BenchmarkFlows(b *testing.B) {
	sock := testBridge(b, "br-ofbench")
	addTestFlows(b, sock)
	q := Query{Match: Match{InPort: 5}}
	ctx := context.Background()
	for b.Loop() {
		res, err := Flows(ctx, sock, q)
		if err != nil {
			b.Fatal(err)
		}
		if len(res[0]) != 2 {
			b.Fatalf("%d flows, want 2", len(res[0]))
		}
	}
}

// BenchmarkOfctlDumpAggregate is the exec that Flows replaces, for
// comparison: the release's ovs-ofctl run directly (no netns switch).
func BenchmarkOfctlDumpAggregate(b *testing.B) {
	sock := testBridge(b, "br-ofbench")
	addTestFlows(b, sock)
	argv := cluster.Release().Command([]string{"ovs-ofctl", "dump-aggregate", "unix:" + sock, "in_port=5"})
	for b.Loop() {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("flow_count=2")) {
			b.Fatalf("%v: %s", err, out)
		}
	}
}
