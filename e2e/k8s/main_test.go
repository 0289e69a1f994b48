package k8s

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

var e *env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := sandbox.CheckPrerequisites(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/k8s:", err)
		return 1
	}
	bin, err := os.MkdirTemp("", "ovn-overlay-k8s-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(bin)
	if err := buildAll(bin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/k8s:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cluster, err := sandbox.Start(ctx, sandbox.Options{Nodes: 2, Progress: os.Stderr, PhysicalNetwork: "datacenter"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e/k8s: sandbox:", err)
		return 1
	}
	e = &env{cluster: cluster, bin: bin, daemonBin: bin + "/ovn-overlayd", daemons: map[string]*sandbox.Process{}}
	code := 1
	defer func() {
		if code != 0 {
			cluster.StopKeepDir()
			fmt.Fprintf(os.Stderr, "e2e/k8s: failed; logs kept in %s\n", cluster.Dir)
			return
		}
		cluster.Stop()
	}()
	if err := setUp(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/k8s:", err)
		return 1
	}
	code = m.Run()
	if crashes := cluster.UnexpectedCrashes(); code == 0 && len(crashes) > 0 {
		fmt.Fprintf(os.Stderr, "%s: OVN/OVS daemons crashed during the run: %q\n", "e2e/k8s", crashes)
		code = 1
	}
	return code
}

func setUp(ctx context.Context) error {
	begin := time.Now()
	if err := e.startAPIServer(ctx); err != nil {
		return err
	}
	step("kube-apiserver ready in %s", time.Since(begin).Round(100*time.Millisecond))
	if err := e.installCRDs(ctx); err != nil {
		return err
	}
	// The daemons run as the manifests' service account, with its RBAC.
	daemonKubeconfig, err := e.installDaemonIdentity(ctx)
	if err != nil {
		return err
	}
	e.daemonKubeconfig = daemonKubeconfig
	for _, n := range e.cluster.Nodes {
		fwd, err := forwardIntoNetns(n.NetnsPath, e.apiAddr)
		if err != nil {
			return err
		}
		e.closers = append(e.closers, fwd)
		if _, err := e.kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		if err := e.startDaemon(n); err != nil {
			return err
		}
	}
	step("harness up in %s", time.Since(begin).Round(100*time.Millisecond))
	return nil
}
