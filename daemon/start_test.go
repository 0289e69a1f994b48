package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/ovn-org/libovsdb/model"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
	"github.com/ovn-overlay/ovn-overlay/ovn/sbdb"
)

// cniCall sends one request to the daemon's socket, as the plugin does.
func cniCall(t *testing.T, sock string, req cniproto.Request) (*types.Error, time.Duration) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	body, _ := json.Marshal(req)
	start := time.Now()
	resp, err := c.Post("http://daemon"+cniproto.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", req.Command, err)
	}
	defer resp.Body.Close()
	var out cniproto.Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: %v", req.Command, err)
	}
	return out.Error, time.Since(start)
}

// TestStartsBeforeOVNAndServesWhenItComes: a daemon whose NB and SB are not
// up yet does not exit; STATUS says what it waits for, at once; ADD is
// "try again later"; once the databases come it serves, with no restart.
// (Before, it exited within 2 s and relied on a crash loop.)
func TestStartsBeforeOVNAndServesWhenItComes(t *testing.T) {
	ovsEP := ovntest.StartOVSWith(t, ovntest.OVSConfig{ExternalIDs: map[string]string{"system-id": "node-s"}})
	dir, err := os.MkdirTemp("", "ovo-start-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	nbSock, sbSock, cniSock := filepath.Join(dir, "nb.sock"), filepath.Join(dir, "sb.sock"), filepath.Join(dir, "cni.sock")
	d, err := New(Config{
		NBAddress: "unix:" + nbSock, SBAddress: "unix:" + sbSock, OVSAddress: ovsEP,
		Socket: cniSock, ReadyTimeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-served; d.Close() })
	ovntest.Eventually(t, "the CNI socket", func() bool { _, err := os.Stat(cniSock); return err == nil })

	status := cniproto.Request{Command: "STATUS", Config: json.RawMessage(`{"cniVersion":"1.1.0","name":"n","type":"ovn-k8s-cni-overlay"}`)}
	// Every answer is code 50 within 1s; once the first attempt to reach
	// the NB has failed, it names the NB.
	ovntest.Eventually(t, "STATUS to name the Northbound database", func() bool {
		e, took := cniCall(t, cniSock, status)
		if e == nil || e.Code != cniproto.ErrPluginNotAvailable || took > time.Second {
			t.Fatalf("STATUS before the NB is up: %+v after %s, want code 50 within 1s", e, took)
		}
		return strings.Contains(e.Msg, "Northbound")
	})
	add := cniproto.Request{Command: "ADD", ContainerID: "c1", IfName: "net1", Netns: "/proc/self/ns/net",
		Config: json.RawMessage(`{"cniVersion":"1.1.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`)}
	if e, _ := cniCall(t, cniSock, add); e == nil || e.Code != types.ErrTryAgainLater || !strings.Contains(e.Msg, "starting") {
		t.Fatalf("ADD before the NB is up: %+v, want code 11 (try again later)", e)
	}

	// The databases come up: the daemon connects by itself.
	ovntest.StartNBAt(t, nbSock)
	sbEP := ovntest.StartSBAt(t, sbSock)
	ovntest.Eventually(t, "the daemon to connect", func() bool {
		e, _ := cniCall(t, cniSock, status)
		return e != nil && strings.Contains(e.Msg, "chassis")
	})
	// ovn-controller registers the chassis: STATUS is ready.
	sb := ovntest.Connect(t, sbEP, mustSBModel(t))
	create, err := sb.Create(&sbdb.Chassis{Name: "node-s", Hostname: "node-s"})
	if err != nil {
		t.Fatal(err)
	}
	ovntest.Transact(t, sb, create...)
	ovntest.Eventually(t, "STATUS ready", func() bool { e, _ := cniCall(t, cniSock, status); return e == nil })
}

func mustSBModel(t *testing.T) model.ClientDBModel {
	t.Helper()
	m, err := sbdb.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	return m
}
