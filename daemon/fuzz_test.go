package daemon

// Fuzz targets for what a hostile or broken client can put on the CNI
// socket. `go test` runs their seeds as ordinary tests; a fuzzing run is
// e.g.
//
//	go test -run XXX -fuzz FuzzServeCNI -fuzztime 60s ./daemon/
//
// A crasher is written to testdata/fuzz/<target>/ and becomes a seed.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
)

// wellKnownCodes are the CNI spec's well-known error codes the daemon may
// answer with (1.1.0, "Error"); 999 (internal) is not among them.
var wellKnownCodes = map[uint]bool{
	types.ErrInvalidEnvironmentVariables: true, // 4
	types.ErrDecodingFailure:             true, // 6
	types.ErrInvalidNetworkConfig:        true, // 7
	types.ErrTryAgainLater:               true, // 11
	cniproto.ErrPluginNotAvailable:       true, // 50
}

const fuzzReadyTimeout = 3 * time.Millisecond

// unreadyDaemon is a daemon whose databases do not exist and that is never
// served, so it never becomes ready: every verb but STATUS waits
// fuzzReadyTimeout and answers 11.
func unreadyDaemon(tb testing.TB, dir string) *Daemon {
	tb.Helper()
	d, err := New(Config{
		NBAddress:  "unix:" + filepath.Join(dir, "nb.sock"),
		SBAddress:  "unix:" + filepath.Join(dir, "sb.sock"),
		OVSAddress: "unix:" + filepath.Join(dir, "ovs.sock"),
		Socket:     filepath.Join(dir, "cni.sock"), ReadyTimeout: fuzzReadyTimeout, Logger: discardLogger(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.Close)
	return d
}

func nestedJSON(depth int) string {
	return `{"command":"ADD","config":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
}

// serveSeeds are request bodies: realistic ones for every verb and broken
// ones of every kind.
func serveSeeds() []string {
	conf := `{"cniVersion":"1.1.0","name":"blue","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.1.0.0/24"}`
	req := func(cmd string) string {
		b, _ := json.Marshal(cniproto.Request{Command: cmd, ContainerID: "c0ffee", Netns: "/var/run/netns/p", IfName: "net1",
			Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p", Path: "/opt/cni/bin", Config: json.RawMessage(conf)})
		return string(b)
	}
	return []string{
		req("ADD"), req("DEL"), req("CHECK"), req("GC"), req("STATUS"), req("VERSION"), req("add"), req("ADD "), req(""),
		`{"command":"STATUS"}`, `{"command":"DEL","config":null}`, `{"command":"ADD","config":"a string"}`,
		``, `{`, `}`, `null`, `[]`, `"ADD"`, `42`, `{"command":1}`, `{"command":null}`, `{"command":["ADD"]}`,
		`{"command":"ADD","config":`, `{"command":"ADD","config":{"name":"x"`, `{"command":"ADD"}{"command":"DEL"}`, `{"command":"ADD"} trailing`,
		`{"command":"ADD","command":"STATUS"}`, `{"Command":"STATUS"}`, `{"COMMAND":"status"}`,
		"{\"command\":\"AD\xffD\"}", "{\"command\":\"STATUS\",\"containerID\":\"\xc3\x28\"}", `{"command":"ADD\u0000"}`, `{"command":"\ud800"}`,
		`{"command":"ADD","containerID":"../../etc","ifName":"/","netns":"/dev/null","args":"IP=garbage"}`,
		`{"command":"ADD","config":{"name":"x","name":"y","cniVersion":1.1}}`,
		`{"command":"ADD","config":1e999}`, `{"command":"ADD","config":-}`,
		nestedJSON(100), nestedJSON(20000),
		"\xef\xbb\xbf" + `{"command":"STATUS"}`, // BOM
		"  \n\t" + `{"command":"STATUS"}` + "\n\n",
		`{"command":"` + strings.Repeat("X", 4096) + `"}`,
	}
}

// FuzzServeCNI posts raw bodies to the CNI handler of a daemon that never
// becomes ready: it must not panic, and must answer every body with one
// well-formed cniproto.Response carrying a well-known CNI code and a
// message, quickly. pad >= 254 pads the body with JSON whitespace to the
// limit (254: exactly maxRequest bytes, accepted) or past it (255: refused
// with code 7 naming the limit).
func FuzzServeCNI(f *testing.F) {
	for _, s := range serveSeeds() {
		f.Add([]byte(s), uint8(0))
	}
	f.Add([]byte(`{"command":"STATUS"}`), uint8(254))
	f.Add([]byte(`{"command":"STATUS"}`), uint8(255))
	f.Add([]byte(`{`), uint8(255))
	d := unreadyDaemon(f, f.TempDir())
	h := d.Handler()
	f.Fuzz(func(t *testing.T, body []byte, pad uint8) {
		if pad >= 254 {
			size := maxRequest + int(pad-254)
			if len(body) < size {
				body = append(append([]byte{}, body...), bytes.Repeat([]byte(" "), size-len(body))...)
			}
		}
		start := time.Now()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, cniproto.Path, bytes.NewReader(body)))
		took := time.Since(start)
		if limit := fuzzReadyTimeout + 2*time.Second; took > limit {
			t.Errorf("answered after %s, want within %s", took, limit)
		}
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("HTTP %d, Content-Type %q; want 200 application/json", rec.Code, rec.Header().Get("Content-Type"))
		}
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.DisallowUnknownFields()
		var resp cniproto.Response
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("answer %q is not a cniproto.Response: %v", trunc(rec.Body.String()), err)
		}
		if rest := bytes.TrimSpace(rec.Body.Bytes()[dec.InputOffset():]); len(rest) > 0 {
			t.Fatalf("answer has trailing data %q", trunc(string(rest)))
		}
		if resp.Error == nil {
			t.Fatalf("a daemon that is not ready answered %q with no error (result %q)", trunc(string(body)), trunc(string(resp.Result)))
		}
		if len(resp.Result) > 0 {
			t.Errorf("an error answer carries a result too: %q", trunc(string(resp.Result)))
		}
		e := resp.Error
		if !wellKnownCodes[e.Code] || e.Msg == "" {
			t.Fatalf("code %d message %q for body %q; want one of 4, 6, 7, 11, 50 with a message", e.Code, e.Msg, trunc(string(body)))
		}
		if !utf8.ValidString(e.Msg) || !utf8.ValidString(e.Details) {
			t.Errorf("error text is not valid UTF-8: %q %q", e.Msg, e.Details)
		}
		// What the answer must be, by what the body is.
		var req cniproto.Request
		var want uint
		switch {
		case len(body) > maxRequest:
			want = types.ErrInvalidNetworkConfig
			if limit := fmt.Sprintf("%d MiB", maxRequest>>20); !strings.Contains(e.Msg, limit) {
				t.Errorf("oversize refusal %q does not name the limit (%s)", e.Msg, limit)
			}
		case json.Unmarshal(body, &req) != nil:
			want = types.ErrDecodingFailure
		case req.Command == "STATUS":
			want = cniproto.ErrPluginNotAvailable
		case req.Command == "ADD" || req.Command == "DEL" || req.Command == "CHECK" || req.Command == "GC":
			want = types.ErrTryAgainLater
		default:
			want = types.ErrInvalidEnvironmentVariables
			if !strings.Contains(e.Msg, "CNI_COMMAND") {
				t.Errorf("unknown verb refused with %q, which does not name CNI_COMMAND", e.Msg)
			}
		}
		if e.Code != want {
			t.Errorf("body %q: code %d (%s), want %d", trunc(string(body)), e.Code, e.Msg, want)
		}
	})
}

// FuzzRequestParsing feeds the request parsers fuzzed config bytes,
// container ID, ifname and CNI_ARGS: they must not panic, every error must
// map (toCNIError) to a well-known code with a message, and what they
// accept must keep the identity it was given.
func FuzzRequestParsing(f *testing.F) {
	confs := []string{
		`{"cniVersion":"1.1.0","name":"blue","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.1.0.0/24"}`,
		`{"cniVersion":"1.0.0","name":"l3","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.128.0.0/16/24"}`,
		`{"cniVersion":"1.0.0","name":"ln","type":"ovn-k8s-cni-overlay","topology":"localnet","vlanID":10}`,
		`{"cniVersion":"1.0.0","name":"blue","topology":"layer3"}`, // layer3 without subnets: DEL still finds the name
		`{"name":"blue","name":"red"}`, `{"name":5}`, `{"name":""}`, `{"name":"a/b"}`, `{"name":"` + strings.Repeat("n", 200) + `"}`,
		`{"cniVersion":"1.1.0","name":"blue","type":"ovn-k8s-cni-overlay","topology":"layer2","mtu":"1400"}`,
		`{"cniVersion":"1.1.0","name":"blue","type":"ovn-k8s-cni-overlay","topology":"layer2","runtimeConfig":{"ips":["garbage"],"mac":"zz"}}`,
		"{\"name\":\"bl\xffue\"}", ``, `null`, `[]`, `"x"`, `{`, strings.Repeat("[", 10001),
	}
	ids := [][2]string{{"c0ffee", "net1"}, {"", "net1"}, {"c0ffee", ""}, {"../x", ".."}, {"a/b\x00c", "/"},
		{strings.Repeat("c", 1024), strings.Repeat("i", 64)}, {"\xff", "eth0\n"}}
	args := []string{"", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p", "IP=garbage", "MAC=garbage",
		"IP=10.0.0.1/24,fd00::1/64;MAC=0a:58:0a:00:00:01", "K8S_POD_NAME=" + strings.Repeat("p", 10000), ";;;==;IP=;MAC=",
		strings.Repeat("K=V;", 2000)}
	for i, c := range confs {
		id := ids[i%len(ids)]
		f.Add([]byte(c), id[0], id[1], args[i%len(args)])
	}
	f.Fuzz(func(t *testing.T, config []byte, containerID, ifName, cniArgs string) {
		req := cniproto.Request{Command: "ADD", ContainerID: containerID, IfName: ifName, Args: cniArgs, Config: config}
		checkErr := func(what string, err error) {
			t.Helper()
			e := toCNIError(err)
			if e == nil || !wellKnownCodes[e.Code] || e.Msg == "" {
				t.Fatalf("%s: error %v maps to %+v; want a well-known code with a message", what, err, e)
			}
			if e.Code != types.ErrInvalidNetworkConfig && e.Code != types.ErrInvalidEnvironmentVariables {
				t.Fatalf("%s: a parse error maps to code %d (%s); want 4 or 7", what, e.Code, e.Msg)
			}
		}

		r, err := parseRequest(req)
		if err != nil {
			checkErr("parseRequest", err)
			if errors.Is(err, errBadEnv) && !strings.Contains(err.Error(), "CNI_") {
				t.Errorf("bad-environment error %q names no CNI_ variable", err)
			}
		} else {
			if r.id.ContainerID != containerID || r.id.IfName != ifName || r.id.Network != r.conf.Name || r.conf.Name == "" {
				t.Fatalf("identity %+v for container %q ifname %q network %q", r.id, containerID, ifName, r.conf.Name)
			}
			if containerID == "" || ifName == "" {
				t.Fatalf("accepted an empty container ID or ifname: %+v", r.id)
			}
			if err := checkTopology(r.conf); err != nil {
				checkErr("checkTopology", err)
			}
			// Names derived from the identity are always usable.
			if pn := r.id.PortName(); !strings.HasPrefix(pn, "ovn-overlay."+r.conf.Name+".") || len(pn) != len("ovn-overlay.")+len(r.conf.Name)+25 {
				t.Errorf("port name %q", pn)
			}
			_ = r.id.LinkAlias()
			_ = r.id.ExternalIDs()
		}

		name, err := networkNameForDel(config)
		if err != nil {
			checkErr("networkNameForDel", err)
			if name != "" {
				t.Errorf("networkNameForDel returned both %q and %v", name, err)
			}
		} else if name == "" {
			t.Fatalf("networkNameForDel(%q) accepted a config naming no network", config)
		}
		if conf, perr := netconf.Parse(config); perr == nil && (err != nil || name != conf.Name) {
			t.Fatalf("DEL's network %q (%v) differs from ADD's %q", name, err, conf.Name)
		}

		id, err := identity(name, req)
		valid := validContainerID(containerID) == nil && netns.ValidateIfName(ifName) == nil
		switch {
		case !valid:
			// Refused, as the runtime's CNI library would, naming the
			// variable.
			if err == nil {
				t.Fatalf("identity accepted container %q ifname %q", containerID, ifName)
			}
			checkErr("identity", err)
			if !strings.Contains(err.Error(), "CNI_CONTAINERID") && !strings.Contains(err.Error(), "CNI_IFNAME") {
				t.Errorf("identity error %q names neither CNI_CONTAINERID nor CNI_IFNAME", err)
			}
		case err != nil:
			t.Fatalf("identity refused container %q ifname %q: %v", containerID, ifName, err)
		default:
			if id.ContainerID != containerID || id.IfName != ifName || id.Network != name {
				t.Fatalf("identity %+v", id)
			}
		}
	})
}

// FuzzNetnsForDel checks DEL's CNI_NETNS handling on fuzzed paths, all
// inside a temp dir holding every kind of thing a path can name: it must
// return quickly (a FIFO without a writer must not block it), never panic,
// and either go on without the netns (gone or a stale mount point) or
// refuse with code 4 naming CNI_NETNS.
func FuzzNetnsForDel(f *testing.F) {
	dir := f.TempDir()
	mustDo := func(err error) {
		if err != nil {
			f.Fatal(err)
		}
	}
	mustDo(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	mustDo(os.Mkdir(filepath.Join(dir, "dir"), 0o700))
	mustDo(os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600))
	mustDo(os.WriteFile(filepath.Join(dir, "file"), []byte("not a netns\n"), 0o600))
	mustDo(os.Symlink("/proc/self/ns/net", filepath.Join(dir, "ownns")))
	mustDo(os.Symlink("loop2", filepath.Join(dir, "loop1")))
	mustDo(os.Symlink("loop1", filepath.Join(dir, "loop2")))
	mustDo(os.Symlink("missing", filepath.Join(dir, "dangling")))
	mustDo(os.Symlink("fifo", filepath.Join(dir, "tofifo")))
	// ownns is the test process's own netns: refused, never used.
	for _, s := range []string{"", "fifo", "dir", "empty", "file", "ownns", "loop1", "dangling", "tofifo", "missing",
		"dir/", "dir/.", "fifo/x", "empty/x", "../../../../etc/passwd", "./dir/../fifo", "a\x00b", "\xff\xfe",
		strings.Repeat("x", 300), strings.Repeat("d/", 3000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		path := ""
		if rel != "" {
			// Clean against "/" first: the path never leaves dir.
			path = filepath.Join(dir, filepath.Clean("/"+rel))
			if path != dir && !strings.HasPrefix(path, dir+"/") {
				t.Fatalf("path %q escapes %s", path, dir)
			}
		}
		type answer struct {
			ns  string
			err error
		}
		done := make(chan answer, 1)
		go func() {
			ns, err := netnsForDel(path)
			done <- answer{ns, err}
		}()
		var a answer
		select {
		case a = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("netnsForDel(%q) blocks", path)
		}
		if a.err != nil {
			e := toCNIError(a.err)
			if e.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(e.Msg, "CNI_NETNS") {
				t.Fatalf("netnsForDel(%q): code %d %q; want 4 naming CNI_NETNS", path, e.Code, e.Msg)
			}
			if a.ns != "" {
				t.Errorf("netnsForDel(%q) returned both %q and an error", path, a.ns)
			}
			return
		}
		if a.ns != "" && a.ns != path {
			t.Fatalf("netnsForDel(%q) = %q", path, a.ns)
		}
		// Nothing under dir is a pod netns: DEL goes on without one.
		if a.ns != "" {
			t.Fatalf("netnsForDel(%q) accepted %q as a pod netns", path, a.ns)
		}
		// What must be refused, never ignored.
		switch strings.TrimSuffix(strings.TrimPrefix(path, dir+"/"), "/") {
		case "fifo", "tofifo", "dir", "ownns", dir:
			t.Fatalf("netnsForDel(%q) went on without a netns; want code 4", path)
		}
	})
}

// TestUnknownCommandsDoNotGrowMetrics: the command of a request labels
// ovn_overlay_cni_duration_seconds; made-up verbs must share one label
// value, or any client could grow the daemon's memory and /metrics
// without bound.
func TestUnknownCommandsDoNotGrowMetrics(t *testing.T) {
	d := unreadyDaemon(t, t.TempDir())
	h := d.Handler()
	before := commandSeries(t)
	for i := 0; i < 1000; i++ {
		body := fmt.Sprintf(`{"command":"FROB-%d-%d"}`, time.Now().UnixNano(), i)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, cniproto.Path, strings.NewReader(body)))
	}
	if grown := commandSeries(t) - before; grown > 1 {
		t.Errorf("1000 requests with made-up verbs added %d series to ovn_overlay_cni_duration_seconds; want at most 1 (e.g. command=\"unknown\")", grown)
	}
}

// commandSeries counts the series of ovn_overlay_cni_duration_seconds.
func commandSeries(t *testing.T) int {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() == "ovn_overlay_cni_duration_seconds" {
			n += len(mf.GetMetric())
		}
	}
	return n
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}
