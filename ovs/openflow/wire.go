package openflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// OpenFlow 1.3.x wire constants (spec sections A.1–A.4, 7.x). Only what a
// flow-statistics client needs is here.
const (
	version13 = 0x04

	headerLen = 8 // version, type, length, xid

	typeHello            = 0
	typeError            = 1
	typeEchoRequest      = 2
	typeEchoReply        = 3
	typeMultipartRequest = 18
	typeMultipartReply   = 19

	// helloElemVersionBitmap is OFPHET_VERSIONBITMAP: the hello element
	// that lists every version a side accepts, so that 1.3 is negotiated
	// even when the switch's highest version is 1.4 or 1.5.
	helloElemVersionBitmap = 1

	multipartFlow      = 1 // OFPMP_FLOW
	multipartReplyMore = 1 // OFPMPF_REPLY_MORE

	errTypeHelloFailed = 0 // OFPET_HELLO_FAILED

	portAny  = 0xffffffff // OFPP_ANY
	groupAny = 0xffffffff // OFPG_ANY
	tableAll = 0xff       // OFPTT_ALL

	matchTypeOXM = 1 // OFPMT_OXM

	// OXM classes: the OpenFlow basic fields, and Open vSwitch's NXM
	// registers as they are addressed from OpenFlow 1.2 on.
	oxmClassBasic = 0x8000 // OFPXMC_OPENFLOW_BASIC
	oxmClassNXM1  = 0x0001 // OFPXMC_NXM_1

	oxmInPort   = 0 // OFPXMT_OFB_IN_PORT
	oxmMetadata = 2 // OFPXMT_OFB_METADATA
	oxmEthDst   = 3 // OFPXMT_OFB_ETH_DST
	oxmEthSrc   = 4 // OFPXMT_OFB_ETH_SRC

	// flowStatsFixedLen is ofp_flow_stats up to its match; the shortest
	// valid entry adds an empty match (4 bytes, padded to 8).
	flowStatsFixedLen = 48
	minFlowStatsLen   = flowStatsFixedLen + 8

	// multipartHeaderLen is what ofp_multipart_request/reply put between
	// the OpenFlow header and the body: type(2) flags(2) pad(4).
	multipartHeaderLen = 8

	// maxMessageLen is what the 16-bit length field allows; a request that
	// does not fit cannot be sent.
	maxMessageLen = 0xffff
)

// errMalformed marks a message that does not parse; it is wrapped with the
// details of what was wrong.
var errMalformed = errors.New("malformed message")

// header is the fixed part of every OpenFlow message.
type header struct {
	Version uint8
	Type    uint8
	Length  uint16
	Xid     uint32
}

func parseHeader(b []byte) header {
	return header{
		Version: b[0],
		Type:    b[1],
		Length:  binary.BigEndian.Uint16(b[2:4]),
		Xid:     binary.BigEndian.Uint32(b[4:8]),
	}
}

// appendHeader appends an OpenFlow 1.3 header whose length field is
// patched later by finishMessage, once the body is known.
func appendHeader(b []byte, typ uint8, xid uint32) []byte {
	b = append(b, version13, typ, 0, 0)
	return binary.BigEndian.AppendUint32(b, xid)
}

// finishMessage sets the length of the message that starts at b[start:].
func finishMessage(b []byte, start int) ([]byte, error) {
	n := len(b) - start
	if n > maxMessageLen {
		return nil, fmt.Errorf("message of %d bytes exceeds the OpenFlow limit of %d", n, maxMessageLen)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return b, nil
}

// appendHello appends a HELLO whose version bitmap offers 1.3 alone: a
// switch that cannot speak it then fails the negotiation instead of
// settling on a version this package does not parse.
func appendHello(b []byte, xid uint32) []byte {
	start := len(b)
	b = appendHeader(b, typeHello, xid)
	b = binary.BigEndian.AppendUint16(b, helloElemVersionBitmap)
	b = binary.BigEndian.AppendUint16(b, 8) // element length: type, length, one bitmap word
	b = binary.BigEndian.AppendUint32(b, 1<<version13)
	b, _ = finishMessage(b, start) // 16 bytes: cannot exceed the limit
	return b
}

// helloVersions returns the versions a HELLO offers as a bitmap (bit n =
// wire version n). Without a bitmap element the sender offers every
// version up to the one in its header (spec 6.3.1), and negotiation takes
// the lower of the two headers.
func helloVersions(h header, body []byte) (uint64, error) {
	for len(body) >= 4 {
		typ := binary.BigEndian.Uint16(body[0:2])
		n := int(binary.BigEndian.Uint16(body[2:4]))
		if n < 4 || n > len(body) {
			return 0, fmt.Errorf("hello element of length %d in %d bytes: %w", n, len(body), errMalformed)
		}
		if typ == helloElemVersionBitmap && n >= 8 {
			// Only the first word matters: it covers versions 0–31.
			return uint64(binary.BigEndian.Uint32(body[4:8])), nil
		}
		// Elements are padded to 8 bytes; the padding is not in n.
		padded := (n + 7) &^ 7
		if padded > len(body) {
			break
		}
		body = body[padded:]
	}
	if h.Version >= 63 {
		return 0, fmt.Errorf("hello of version %#x: %w", h.Version, errMalformed)
	}
	return (uint64(1) << (h.Version + 1)) - 1, nil
}

// versionNames renders a version bitmap the way the Bridge table's
// protocols column spells versions, so the error tells users what to set.
func versionNames(bitmap uint64) string {
	s := ""
	for v := 1; v < 64; v++ {
		if bitmap&(1<<v) == 0 {
			continue
		}
		if s != "" {
			s += ","
		}
		if v <= 6 {
			s += fmt.Sprintf("OpenFlow1%d", v-1)
		} else {
			s += fmt.Sprintf("wire version %#x", v)
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// appendOXM appends one OXM TLV without a mask.
func appendOXM(b []byte, class uint16, field uint8, value []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, class)
	b = append(b, field<<1, uint8(len(value)))
	return append(b, value...)
}

// appendMatch appends m as an ofp_match of type OXM, padded to 8 bytes.
// Fields are written in the order of the Match struct; OVS accepts any
// order as long as no field repeats.
func appendMatch(b []byte, m Match) ([]byte, error) {
	for _, mac := range []struct {
		name string
		addr []byte
	}{{"EthSrc", m.EthSrc}, {"EthDst", m.EthDst}} {
		if len(mac.addr) != 0 && len(mac.addr) != 6 {
			return nil, fmt.Errorf("match %s %v: want a 6-byte Ethernet address", mac.name, mac.addr)
		}
	}
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, matchTypeOXM)
	b = append(b, 0, 0) // length, set below
	if m.InPort != 0 {
		b = appendOXM(b, oxmClassBasic, oxmInPort, binary.BigEndian.AppendUint32(nil, m.InPort))
	}
	if m.Metadata != nil {
		b = appendOXM(b, oxmClassBasic, oxmMetadata, binary.BigEndian.AppendUint64(nil, *m.Metadata))
	}
	if m.Reg14 != nil {
		b = appendOXM(b, oxmClassNXM1, 14, binary.BigEndian.AppendUint32(nil, *m.Reg14))
	}
	if m.Reg15 != nil {
		b = appendOXM(b, oxmClassNXM1, 15, binary.BigEndian.AppendUint32(nil, *m.Reg15))
	}
	if len(m.EthSrc) != 0 {
		b = appendOXM(b, oxmClassBasic, oxmEthSrc, m.EthSrc)
	}
	if len(m.EthDst) != 0 {
		b = appendOXM(b, oxmClassBasic, oxmEthDst, m.EthDst)
	}
	// The length covers type, length and the TLVs but not the padding.
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	for (len(b)-start)%8 != 0 {
		b = append(b, 0)
	}
	return b, nil
}

// appendFlowStatsRequest appends an OFPMP_FLOW multipart request for q.
func appendFlowStatsRequest(b []byte, xid uint32, q Query) ([]byte, error) {
	start := len(b)
	b = appendHeader(b, typeMultipartRequest, xid)
	b = binary.BigEndian.AppendUint16(b, multipartFlow)
	b = append(b, 0, 0, 0, 0, 0, 0) // flags, pad
	table := uint8(tableAll)
	if q.Table != nil {
		table = *q.Table
	}
	outPort := uint32(portAny)
	if q.OutPort != 0 {
		outPort = q.OutPort
	}
	b = append(b, table, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, outPort)
	b = binary.BigEndian.AppendUint32(b, groupAny)
	b = append(b, 0, 0, 0, 0)          // pad
	b = append(b, make([]byte, 16)...) // cookie, cookie_mask: any cookie
	b, err := appendMatch(b, q.Match)
	if err != nil {
		return nil, err
	}
	return finishMessage(b, start)
}

// multipartReply is one part of an OFPMP_FLOW reply.
type multipartReply struct {
	More  bool
	Flows []Flow
}

// parseFlowStatsReply parses the body of an OFPT_MULTIPART_REPLY (what
// follows the OpenFlow header) that answers an OFPMP_FLOW request.
func parseFlowStatsReply(body []byte) (multipartReply, error) {
	if len(body) < multipartHeaderLen {
		return multipartReply{}, fmt.Errorf("multipart reply of %d bytes: %w", len(body), errMalformed)
	}
	if typ := binary.BigEndian.Uint16(body[0:2]); typ != multipartFlow {
		return multipartReply{}, fmt.Errorf("multipart reply of type %d to a flow stats request: %w", typ, errMalformed)
	}
	r := multipartReply{More: binary.BigEndian.Uint16(body[2:4])&multipartReplyMore != 0}
	flows, err := parseFlowStats(body[multipartHeaderLen:])
	if err != nil {
		return multipartReply{}, err
	}
	r.Flows = flows
	return r, nil
}

// parseFlowStats parses a run of ofp_flow_stats. Every length is checked
// before it is used, so that a corrupt reply is an error: a zero length
// would otherwise loop forever and a long one would read past the buffer.
func parseFlowStats(b []byte) ([]Flow, error) {
	var flows []Flow
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < 2 {
			return nil, fmt.Errorf("flow stats entry at offset %d: %d trailing bytes: %w", off, len(rest), errMalformed)
		}
		n := int(binary.BigEndian.Uint16(rest[0:2]))
		if n < minFlowStatsLen || n > len(rest) {
			return nil, fmt.Errorf("flow stats entry at offset %d: length %d with %d bytes left: %w", off, n, len(rest), errMalformed)
		}
		e := rest[:n]
		matchType := binary.BigEndian.Uint16(e[flowStatsFixedLen:])
		matchLen := int(binary.BigEndian.Uint16(e[flowStatsFixedLen+2:]))
		if matchType != matchTypeOXM || matchLen < 4 || flowStatsFixedLen+(matchLen+7)&^7 > n {
			return nil, fmt.Errorf("flow stats entry at offset %d: match of type %d and length %d in an entry of %d bytes: %w", off, matchType, matchLen, n, errMalformed)
		}
		match := e[flowStatsFixedLen : flowStatsFixedLen+matchLen]
		f := Flow{
			Table:    e[2],
			Duration: time.Duration(binary.BigEndian.Uint32(e[4:8]))*time.Second + time.Duration(binary.BigEndian.Uint32(e[8:12])),
			Priority: binary.BigEndian.Uint16(e[12:14]),
			Cookie:   binary.BigEndian.Uint64(e[24:32]),
			Packets:  binary.BigEndian.Uint64(e[32:40]),
			Bytes:    binary.BigEndian.Uint64(e[40:48]),
		}
		f.Key = flowKey(f.Table, f.Priority, match)
		flows = append(flows, f)
		off += n
	}
	return flows, nil
}

// flowKey is table, priority and the raw match: within a table OpenFlow
// allows one entry per priority and match, and OVS encodes a given match
// the same way in every reply.
func flowKey(table uint8, priority uint16, match []byte) string {
	k := make([]byte, 0, 3+len(match))
	k = append(k, table)
	k = binary.BigEndian.AppendUint16(k, priority)
	return string(append(k, match...))
}

// errorTypeNames are the OFPET_* names of OpenFlow 1.3, for messages.
var errorTypeNames = map[uint16]string{
	0: "HELLO_FAILED", 1: "BAD_REQUEST", 2: "BAD_ACTION", 3: "BAD_INSTRUCTION",
	4: "BAD_MATCH", 5: "FLOW_MOD_FAILED", 6: "GROUP_MOD_FAILED", 7: "PORT_MOD_FAILED",
	8: "TABLE_MOD_FAILED", 9: "QUEUE_OP_FAILED", 10: "SWITCH_CONFIG_FAILED",
	11: "ROLE_REQUEST_FAILED", 12: "METER_MOD_FAILED", 13: "TABLE_FEATURES_FAILED",
	0xffff: "EXPERIMENTER",
}

// parseError turns an OFPT_ERROR body into an *Error.
func parseError(body []byte) (*Error, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("error message of %d bytes: %w", len(body), errMalformed)
	}
	return &Error{Type: binary.BigEndian.Uint16(body[0:2]), Code: binary.BigEndian.Uint16(body[2:4])}, nil
}
