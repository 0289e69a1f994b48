package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const manifests = "../../deploy/ovn-overlay.yaml"

// loadManifests decodes every object of the deployment manifests.
func loadManifests() ([]*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(manifests)
	if err != nil {
		return nil, err
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := decoder.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if obj != nil {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

// apply server-side-applies u, for real or as a dry run.
func (e *env) apply(ctx context.Context, u *unstructured.Unstructured, dryRun bool) error {
	rest, err := clientcmd.BuildConfigFromFlags("", e.kubeconfig)
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rest)
	if err != nil {
		return err
	}
	gvk := u.GroupVersionKind()
	mapping, err := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)).RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
	}
	res := e.dyn.Resource(mapping.Resource)
	var client interface {
		Apply(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions, ...string) (*unstructured.Unstructured, error)
	} = res
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		client = res.Namespace(u.GetNamespace())
	}
	opts := metav1.ApplyOptions{FieldManager: "ovn-overlay-e2e"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := client.Apply(ctx, u.GetName(), u, opts); err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

// installDaemonIdentity applies the manifests' namespace, service account
// and RBAC for real and writes a kubeconfig with a token of that service
// account: the daemons then run with exactly the permissions the manifests
// grant, so a missing rule fails the suite.
func (e *env) installDaemonIdentity(ctx context.Context) (string, error) {
	objs, err := loadManifests()
	if err != nil {
		return "", err
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if err := e.apply(ctx, u, false); err != nil {
				return "", err
			}
		}
	}
	expiry := int64(24 * 3600)
	tok, err := e.kube.CoreV1().ServiceAccounts(leaseNamespace).CreateToken(ctx, "ovn-overlay-node",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for the daemon's service account: %w", err)
	}
	admin, err := clientcmd.LoadFromFile(e.kubeconfig)
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = admin.Clusters["e2e"]
	cfg.AuthInfos["ovn-overlay-node"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "ovn-overlay-node"}
	cfg.CurrentContext = "e2e"
	path := filepath.Join(filepath.Dir(e.kubeconfig), "daemon-kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// TestDeployManifestsPassServerSideDryRun applies every object of
// deploy/ovn-overlay.yaml to the real API server with dryRun=All, as
// `kubectl apply --server-side --dry-run=server` does: schema validation,
// defaulting and admission run, nothing is stored. (The daemons of this
// suite already run with the manifests' service account and RBAC.)
func TestDeployManifestsPassServerSideDryRun(t *testing.T) {
	objs, err := loadManifests()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, u := range objs {
		if err := e.apply(context.Background(), u, true); err != nil {
			t.Error(err)
		}
		kinds[u.GetKind()]++
	}
	for _, want := range []string{"DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap"} {
		if kinds[want] == 0 {
			t.Errorf("the manifests have no %s", want)
		}
	}
}
