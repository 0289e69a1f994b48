package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// TestMetricsEndpoint: after an ADD, the daemon's /metrics reports the
// phases of ADD and the NB transaction that carried it.
func TestMetricsEndpoint(t *testing.T) {
	network := "l2-metrics-" + randomID()[:4]
	p := newPod(t, node(t, 0), "metrics")
	mustAdd(t, p, "net1", layer2Config(network, "10.38.0.0/24", nil))

	body := daemonMetrics(t, p.Node)
	for _, series := range []string{
		`ovn_overlay_cni_duration_seconds_count{command="ADD",result="ok"}`,
		`ovn_overlay_add_phase_duration_seconds_count{phase="nb_port"}`,
		`ovn_overlay_add_phase_duration_seconds_count{phase="plug"}`,
		`ovn_overlay_add_phase_duration_seconds_count{phase="configure"}`,
		`ovn_overlay_add_phase_duration_seconds_count{phase="ovn_installed"}`,
		`ovn_overlay_nb_port_transactions_total{result="ok"}`,
	} {
		v, ok := metricValue(body, series)
		if !ok {
			t.Errorf("metrics lack %s", series)
			continue
		}
		if v < 1 {
			t.Errorf("%s = %v, want at least 1", series, v)
		}
	}
}

// TestMetricsOnlyOnLoopback: the daemon runs in the host network, so by
// default its metrics (which name networks) must not answer on the node's
// own address.
func TestMetricsOnlyOnLoopback(t *testing.T) {
	n := node(t, 0)
	daemonMetrics(t, n) // listening on loopback
	err := sandbox.InNetns(n.NetnsPath, func() error {
		conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(n.IP, 9476).String(), 2*time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	})
	if err == nil {
		t.Fatalf("metrics answer on the node address %s:9476; want loopback only", n.IP)
	}
}

// daemonMetrics scrapes node n's daemon /metrics (127.0.0.1:9476 in the
// node's netns). The connection is made on a thread inside the netns:
// http.Transport would dial from another goroutine, outside.
func daemonMetrics(t *testing.T, n *sandbox.Node) string {
	t.Helper()
	var conn net.Conn
	err := sandbox.InNetns(n.NetnsPath, func() (err error) {
		conn, err = net.DialTimeout("tcp", "127.0.0.1:9476", 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("connect to %s metrics: %v", n.Name, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:9476/metrics", nil)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// metricValue finds one series (name{labels}) in a scrape.
func metricValue(body, series string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}
