package ovs_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/ovn-overlay/ovn-overlay/ovs"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// These tests run against a real node: ovsdb-server, ovs-vswitchd with a
// netdev br-int, and ovn-controller connected to a real central OVN.
var cluster *sandbox.Cluster

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, sandbox.Options{Nodes: 1}, func(c *sandbox.Cluster) { cluster = c }))
}

func connect(t *testing.T) *ovs.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ovs.Connect(ctx, cluster.Nodes[0].OVS, "br-int", logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func vsctl(t *testing.T, args ...string) string {
	t.Helper()
	n := cluster.Nodes[0]
	out, err := n.Run(append([]string{"ovs-vsctl", "--db=" + n.OVS}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func nbctl(t *testing.T, args ...string) {
	t.Helper()
	if _, err := sandbox.RunIn("", append([]string{"ovn-nbctl", "--db=" + cluster.Central.NB}, args...)...); err != nil {
		t.Fatal(err)
	}
}

// veth makes a veth pair in the node; OVS gets one end.
func veth(t *testing.T, name string) {
	t.Helper()
	n := cluster.Nodes[0]
	if _, err := n.Run("ip", "link", "add", name, "type", "veth", "peer", "name", name+"p"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = n.Run("ip", "link", "del", name) })
	if _, err := n.Run("ip", "link", "set", name, "up"); err != nil {
		t.Fatal(err)
	}
}

func TestChassisAndDatapath(t *testing.T) {
	c := connect(t)
	ch, err := c.Chassis()
	if err != nil {
		t.Fatal(err)
	}
	if ch.SystemID != cluster.Nodes[0].Name || ch.EncapIP != cluster.Nodes[0].IP {
		t.Errorf("chassis %+v, want %s at %s", ch, cluster.Nodes[0].Name, cluster.Nodes[0].IP)
	}
	userspace, err := c.UserspaceDatapath()
	if err != nil || !userspace {
		t.Errorf("UserspaceDatapath = %v, %v; the sandbox's br-int is netdev", userspace, err)
	}
}

func TestAddWaitInstalledDelete(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	veth(t, "ovtest1")
	// ovn-controller marks the port installed only once a logical port
	// with the iface-id exists: this exercises the real event.
	nbctl(t, "ls-add", "ovs-test-ls", "--", "lsp-add", "ovs-test-ls", "lsp-ovtest1")
	if err := c.AddPort(ctx, ovs.PortSpec{Name: "ovtest1", IfaceID: "lsp-ovtest1", MAC: "0a:58:00:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.WaitInstalled(waitCtx, "ovtest1"); err != nil {
		t.Fatal(err)
	}
	t.Logf("ovn-installed after %s", time.Since(start))
	if got := vsctl(t, "get", "Interface", "ovtest1", "external_ids:iface-id"); got != `"lsp-ovtest1"` && got != "lsp-ovtest1" {
		t.Errorf("iface-id %s", got)
	}
	if err := c.DeletePort(ctx, "ovtest1"); err != nil {
		t.Fatal(err)
	}
	if got := vsctl(t, "list-ports", "br-int"); strings.Contains(got, "ovtest1") {
		t.Errorf("port still on br-int: %s", got)
	}
	// Idempotent.
	if err := c.DeletePort(ctx, "ovtest1"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestWaitInstalledTimesOutWithoutLogicalPort(t *testing.T) {
	c := connect(t)
	veth(t, "ovtest2")
	if err := c.AddPort(context.Background(), ovs.PortSpec{Name: "ovtest2", IfaceID: "no-such-lsp"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeletePort(context.Background(), "ovtest2") })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.WaitInstalled(ctx, "ovtest2")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "ovn-installed") {
		t.Fatalf("got %v, want a deadline error that shows the port's state", err)
	}
}

func TestWaitInstalledFailsFastOnInterfaceError(t *testing.T) {
	c := connect(t)
	// No such kernel device: ovs-vswitchd reports an error on the row.
	if err := c.AddPort(context.Background(), ovs.PortSpec{Name: "ovtest-none", IfaceID: "x"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeletePort(context.Background(), "ovtest-none") })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.WaitInstalled(ctx, "ovtest-none")
	if !errors.Is(err, ovs.ErrInterfaceFailed) {
		t.Fatalf("got %v, want ErrInterfaceFailed", err)
	}
}

func TestForeignPortIsLeftAlone(t *testing.T) {
	c := connect(t)
	vsctl(t, "add-port", "br-int", "foreign0", "--", "set", "Interface", "foreign0", "type=internal")
	t.Cleanup(func() { vsctl(t, "--if-exists", "del-port", "br-int", "foreign0") })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := c.Interface("foreign0"); ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.DeletePort(context.Background(), "foreign0"); err == nil {
		t.Fatal("deleted a port ovn-overlay did not create")
	}
	if got := vsctl(t, "list-ports", "br-int"); !strings.Contains(got, "foreign0") {
		t.Fatal("foreign port was removed")
	}
}
