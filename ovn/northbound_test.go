package ovn_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// These tests run against a real OVN Northbound ovsdb-server.
var central *sandbox.Cluster

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, sandbox.Options{Nodes: 0}, func(c *sandbox.Cluster) { central = c }))
}

func connect(t *testing.T) *ovn.Northbound {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nb, err := ovn.ConnectNorthbound(ctx, central.Central.NB, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nb.Close)
	return nb
}

func nbctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := sandbox.RunIn("", append([]string{"ovn-nbctl", "--db=" + central.Central.NB}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func TestEnsureSwitchRaceCreatesOne(t *testing.T) {
	// Several "nodes" meet a new network at the same moment.
	clients := []*ovn.Northbound{connect(t), connect(t), connect(t)}
	for round := 0; round < 5; round++ {
		name := fmt.Sprintf("race-%d", round)
		var wg sync.WaitGroup
		uuids := make([]string, len(clients))
		errs := make([]error, len(clients))
		for i, nb := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ls, err := nb.EnsureSwitch(context.Background(), name, map[string]string{externalids.Network: name})
				errs[i] = err
				if err == nil {
					uuids[i] = ls.UUID
				}
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if uuids[i] != uuids[0] {
				t.Fatalf("clients disagree on the switch: %v", uuids)
			}
		}
		if got := nbctl(t, "--bare", "--columns=_uuid", "find", "Logical_Switch", "name="+name); len(strings.Fields(got)) != 1 {
			t.Fatalf("switch %s exists %d times", name, len(strings.Fields(got)))
		}
	}
}

func TestGuardDetectsConcurrentPortChange(t *testing.T) {
	a, b := connect(t), connect(t)
	ctx := context.Background()
	ls, err := a.EnsureSwitch(ctx, "guarded", nil)
	if err != nil {
		t.Fatal(err)
	}
	stale := *ls
	// Another writer adds a port after a read the cache.
	lsB, err := b.EnsureSwitch(ctx, "guarded", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ApplyPorts(ctx, ovn.PortChange{Switch: lsB, Add: []*nbdb.LogicalSwitchPort{port("p-b")}, Guard: true}); err != nil {
		t.Fatal(err)
	}
	_, err = a.ApplyPorts(ctx, ovn.PortChange{Switch: &stale, Add: []*nbdb.LogicalSwitchPort{port("p-a")}, Guard: true})
	if !errors.Is(err, ovn.ErrConflict) {
		t.Fatalf("stale guarded write: got %v, want ErrConflict", err)
	}
	if got := nbctl(t, "--bare", "--columns=name", "find", "Logical_Switch_Port", "name=p-a"); got != "" {
		t.Fatal("the failed transaction created its port anyway")
	}
	// With a fresh read it goes through.
	deadline := time.Now().Add(5 * time.Second)
	for {
		fresh, _ := a.Switch("guarded")
		if len(fresh.Ports) == 1 || time.Now().After(deadline) {
			if _, err := a.ApplyPorts(ctx, ovn.PortChange{Switch: fresh, Add: []*nbdb.LogicalSwitchPort{port("p-a")}, Guard: true}); err != nil {
				t.Fatalf("fresh guarded write: %v", err)
			}
			break
		}
		<-a.Changed()
	}
	if got := nbctl(t, "--bare", "--columns=ports", "find", "Logical_Switch", "name=guarded"); len(strings.Fields(got)) != 2 {
		t.Fatalf("switch ports %q, want 2", got)
	}
}

func TestUnownedRowsAreLeftAlone(t *testing.T) {
	nbctl(t, "ls-add", "foreign")
	nbctl(t, "lsp-add", "foreign", "foreign-port")
	nb := connect(t)
	if _, ok := nb.Switch("foreign"); ok {
		t.Error("an unowned switch is in the owned-rows cache")
	}
	if _, ok := nb.Port("foreign-port"); ok {
		t.Error("an unowned port is in the owned-rows cache")
	}
	_, err := nb.EnsureSwitch(context.Background(), "foreign", nil)
	if !errors.Is(err, ovn.ErrNotOwned) {
		t.Fatalf("EnsureSwitch over a foreign switch: got %v, want ErrNotOwned", err)
	}
}

func port(name string) *nbdb.LogicalSwitchPort {
	return &nbdb.LogicalSwitchPort{Name: name, ExternalIDs: map[string]string{externalids.Owner: externalids.OwnerValue}}
}
