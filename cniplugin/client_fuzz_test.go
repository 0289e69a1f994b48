package cniplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
)

// FuzzForwardAnswers: whatever the daemon answers (any status, any body),
// the plugin neither panics nor prints anything but a result the daemon
// sent as such; a failure is a CNI error with a code, which the runtime
// can read.
func FuzzForwardAnswers(f *testing.F) {
	for _, s := range []string{
		`{"result":{"cniVersion":"1.1.0","interfaces":[{"name":"net1"}]}}`,
		`{"error":{"code":7,"msg":"bad config"}}`,
		`{"error":{"code":0,"msg":""}}`, `{"error":null,"result":null}`, `{"result":"x"}`, `{"error":{"code":"7"}}`,
		`{}`, ``, `{`, `null`, `[]`, `{"result":{}}{"error":{"code":1}}`, "\xff",
	} {
		f.Add([]byte(s), uint16(200))
	}
	f.Add([]byte(`not found`), uint16(404))
	f.Add([]byte(`{"error":{"code":11,"msg":"later"}}`), uint16(500))

	sock := filepath.Join(f.TempDir(), "cni.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		f.Fatal(err)
	}
	type answer struct {
		body   []byte
		status int
	}
	var current atomic.Pointer[answer]
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		a := current.Load()
		w.WriteHeader(a.status)
		_, _ = w.Write(a.body)
	})}
	// Each call makes its own Transport (as the one-shot plugin process
	// does); without this, every exec would leave a keep-alive connection
	// open in the fuzz worker until it runs out of file descriptors.
	srv.SetKeepAlivesEnabled(false)
	go func() { _ = srv.Serve(l) }()
	f.Cleanup(func() { srv.Close() })

	f.Fuzz(func(t *testing.T, body []byte, status uint16) {
		if status < 200 || status > 599 {
			status = 200
		}
		current.Store(&answer{body, int(status)})
		var out bytes.Buffer
		c := &Client{Socket: sock, Stdout: &out}
		err := c.forward("ADD")(&skel.CmdArgs{ContainerID: "c", Netns: "/proc/self/ns/net", IfName: "net1",
			StdinData: []byte(`{"cniVersion":"1.1.0","name":"n","type":"ovn-k8s-cni-overlay"}`)})
		var resp cniproto.Response
		decodes := json.NewDecoder(bytes.NewReader(body)).Decode(&resp) == nil
		if err == nil {
			if !decodes || resp.Error != nil {
				t.Fatalf("answer %q (HTTP %d) taken as success", body, status)
			}
			if !bytes.Equal(out.Bytes(), resp.Result) {
				t.Fatalf("printed %q, the daemon's result is %q", out.Bytes(), resp.Result)
			}
			return
		}
		if out.Len() > 0 {
			t.Fatalf("printed %q and failed with %v", out.Bytes(), err)
		}
		var ce *types.Error
		if !errors.As(err, &ce) {
			t.Fatalf("failure %v is not a CNI error", err)
		}
	})
}
