// Package k8s runs the product end to end as a Kubernetes cluster would:
// a real kube-apiserver (built from k8s.io/kubernetes) on Debian's etcd, the
// NAD and IPAMClaim CRDs, the two-node OVN sandbox with ovn-overlayd on each
// node connected to the API server, and the real Multus thin plugin invoked
// by the test acting as the container runtime, with ovn-k8s-cni-overlay as
// Multus's delegate.
package k8s

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	ipamclaims "github.com/k8snetworkplumbingwg/ipamclaims/pkg/crd/ipamclaims/v1alpha1/apis/clientset/versioned"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// env is the running harness.
type env struct {
	cluster    *sandbox.Cluster
	bin        string // plugin binaries: ovn-k8s-cni-overlay, multus, loopback
	daemonBin  string
	kubeconfig string // admin
	// daemonKubeconfig authenticates as the manifests' service account.
	daemonKubeconfig string
	kube             kubernetes.Interface
	nads             nadclient.Interface
	claims           ipamclaims.Interface
	dyn              dynamic.Interface
	daemons          map[string]*sandbox.Process
	apiAddr          string // host:port of the API server on loopback
	closers          []io.Closer
}

// step prints harness progress: a cold start builds kube-apiserver (minutes).
func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "e2e/k8s: "+format+"\n", args...)
}

// buildAll builds every binary the harness runs. Go's build cache makes
// this seconds when warm; the first kube-apiserver build takes minutes.
func buildAll(bin string) error {
	builds := []struct{ dir, out, pkg, ldflags string }{
		{"../..", "ovn-k8s-cni-overlay", "./cmd/ovn-k8s-cni-overlay", ""},
		{"../..", "ovn-overlayd", "./cmd/ovn-overlayd", ""},
		{"../..", "ovn-overlayctl", "./cmd/ovn-overlayctl", ""},
		{".", "loopback", "github.com/containernetworking/plugins/plugins/main/loopback", ""},
		{"../tools/multus", "multus", "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus", ""},
		{"../tools/kube-apiserver", "kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", "-X k8s.io/component-base/version.gitVersion=v1.34.2"},
	}
	for _, b := range builds {
		step("building %s", b.out)
		start := time.Now()
		var extra []string
		if b.ldflags != "" {
			extra = append(extra, "-ldflags", b.ldflags)
		}
		out, err := sandbox.BuildCommand(b.dir, filepath.Join(bin, b.out), b.pkg, extra...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("build %s: %w\n%s", b.pkg, err, out)
		}
		step("built %s in %s", b.out, time.Since(start).Round(time.Second))
	}
	// The plugin under the enhancement's type too, as the DaemonSet
	// installs it: Multus runs a NAD's "type" from the CNI bin dir.
	return os.Symlink("ovn-k8s-cni-overlay", filepath.Join(bin, "ovn-kubernetes"))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startAPIServer runs etcd and kube-apiserver on loopback, writes an admin
// kubeconfig and waits until the server is ready.
func (e *env) startAPIServer(ctx context.Context) error {
	dir := filepath.Join(e.cluster.Dir, "kube")
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		return err
	}
	clientPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	if _, err := e.cluster.Start("etcd", "", nil, "etcd", "--data-dir", filepath.Join(dir, "etcd"),
		"--name", "e2e", "--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL); err != nil {
		return err
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saKey := filepath.Join(dir, "sa.key")
	if err := os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	token := "e2e-" + randomID()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",e2e-admin,e2e-admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	certDir := filepath.Join(dir, "certs")
	if _, err := e.cluster.Start("kube-apiserver", "", nil, filepath.Join(e.bin, "kube-apiserver"),
		"--etcd-servers="+etcdURL, fmt.Sprintf("--secure-port=%d", port), "--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1", "--cert-dir="+certDir,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saKey, "--service-account-signing-key-file="+saKey,
		"--token-auth-file="+tokens, "--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		// Like any real cluster that runs node agents (kubeadm's default).
		"--allow-privileged=true"); err != nil {
		return err
	}
	e.apiAddr = fmt.Sprintf("127.0.0.1:%d", port)
	server := "https://" + e.apiAddr
	if err := waitReady(ctx, server, token); err != nil {
		return err
	}
	e.kubeconfig = filepath.Join(dir, "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: filepath.Join(certDir, "apiserver.crt")}
	cfg.AuthInfos["e2e-admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e-admin"}
	cfg.CurrentContext = "e2e"
	if err := clientcmd.WriteToFile(*cfg, e.kubeconfig); err != nil {
		return err
	}
	rest, err := clientcmd.BuildConfigFromFlags("", e.kubeconfig)
	if err != nil {
		return err
	}
	if e.kube, err = kubernetes.NewForConfig(rest); err != nil {
		return err
	}
	if e.nads, err = nadclient.NewForConfig(rest); err != nil {
		return err
	}
	if e.claims, err = ipamclaims.NewForConfig(rest); err != nil {
		return err
	}
	e.dyn, err = dynamic.NewForConfig(rest)
	return err
}

func waitReady(ctx context.Context, server, token string) error {
	// The server's certificate is self-signed and not yet known here; this
	// probe only asks "are you up", the clients below verify the CA.
	httpc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := httpc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver at %s not ready after 90s", server)
}

// installCRDs applies the CRDs shipped in the NAD client and ipamclaims
// modules (read from the module cache, not copied into this repository).
func (e *env) installCRDs(ctx context.Context) error {
	files := map[string]string{
		"github.com/k8snetworkplumbingwg/network-attachment-definition-client": "artifacts/networks-crd.yaml",
		"github.com/k8snetworkplumbingwg/ipamclaims":                           "artifacts/k8s.cni.cncf.io_ipamclaims.yaml",
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for mod, file := range files {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
		if err != nil {
			return fmt.Errorf("locate module %s: %w", mod, err)
		}
		raw, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), file))
		if err != nil {
			return err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		crd := &unstructured.Unstructured{Object: obj}
		if _, err := e.dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", crd.GetName(), err)
		}
	}
	// Served once the API lists them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err1 := e.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions("default").List(ctx, metav1.ListOptions{})
		_, err2 := e.dyn.Resource(schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1alpha1", Resource: "ipamclaims"}).Namespace("default").List(ctx, metav1.ListOptions{})
		if err1 == nil && err2 == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CRDs not served: %v %v", err1, err2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ensureNamespace creates a namespace and its default ServiceAccount (no
// controller-manager runs to create it).
func (e *env) ensureNamespace(ctx context.Context, name string) error {
	_, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, err = e.kube.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// startDaemon runs ovn-overlayd on a node, connected to the API server.
func (e *env) startDaemon(n *sandbox.Node) error {
	p, err := n.StartDaemon(e.daemonBin, e.daemonArgs()...)
	if err != nil {
		return err
	}
	e.daemons[n.Name] = p
	return nil
}

// leaseNamespace is the manifests' namespace, where the daemons elect the
// node clean-up leader.
const leaseNamespace = "ovn-overlay"

func (e *env) daemonArgs() []string {
	return []string{"-v", "--kubeconfig=" + e.daemonKubeconfig, "--lease-namespace=" + leaseNamespace, "--external-network=" + externalNetworkFlag}
}

// multusConfig is the node's Multus config: the cluster network is the
// reference loopback plugin, secondary networks come from NADs.
func (e *env) multusConfig(n *sandbox.Node) []byte {
	dir := filepath.Join(n.Dir, "multus")
	return []byte(fmt.Sprintf(`{
  "cniVersion": "0.3.1",
  "name": "multus-cni-network",
  "type": "multus",
  "kubeconfig": %q,
  "confDir": %q,
  "cniDir": %q,
  "binDir": %q,
  "logFile": %q,
  "logLevel": "verbose",
  "delegates": [{"cniVersion": "0.3.1", "name": "cluster", "type": "loopback"}]
}`, e.kubeconfig, filepath.Join(dir, "conf"), filepath.Join(dir, "cache"), e.bin, filepath.Join(dir, "multus.log")))
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
