package ovn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// pki writes a CA and certificates it signs, as ovs-pki would: no host
// names (the client does not check them).
type pki struct {
	dir    string
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
}

func newPKI(t *testing.T, dir, name string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{dir: dir, caKey: key, caCert: cert}
	writePEM(t, filepath.Join(dir, name+"-ca.pem"), "CERTIFICATE", der)
	return p
}

// issue writes name-key.pem and name-cert.pem signed by the CA.
func (p *pki) issue(t *testing.T, name string, serial int64) (keyFile, certFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	keyFile, certFile = filepath.Join(p.dir, name+"-key.pem"), filepath.Join(p.dir, name+"-cert.pem")
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	writePEM(t, certFile, "CERTIFICATE", der)
	return keyFile, certFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startSSLNB runs a real NB ovsdb-server serving only ssl: on loopback.
func startSSLNB(t *testing.T, dir, key, cert, ca string) string {
	t.Helper()
	db := filepath.Join(dir, "nb.db")
	if out, err := exec.Command("ovsdb-tool", "create", db, "/usr/share/ovn/ovn-nb.ovsschema").CombinedOutput(); err != nil {
		t.Fatalf("ovsdb-tool create: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("ovsdb-server", db, fmt.Sprintf("--remote=pssl:%d:127.0.0.1", port),
		"--private-key="+key, "--certificate="+cert, "--ca-cert="+ca,
		"--pidfile="+filepath.Join(dir, "nb.pid"), "--unixctl="+filepath.Join(dir, "nb.ctl"),
		"--log-file="+filepath.Join(dir, "nb.log"), "--no-chdir")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "ssl:" + addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "nb.log"))
			t.Fatalf("ovsdb-server never listened on %s: %s", addr, log)
		}
	}
}

// TestSSLEndpoints: ssl: NB endpoints work with the key, certificate and CA
// ovn-controller takes, and a server or client outside the CA is refused.
func TestSSLEndpoints(t *testing.T) {
	dir := t.TempDir()
	good, other := newPKI(t, dir, "good"), newPKI(t, dir, "other")
	serverKey, serverCert := good.issue(t, "server", 2)
	endpoint := startSSLNB(t, dir, serverKey, serverCert, filepath.Join(dir, "good-ca.pem"))

	clientKey, clientCert := good.issue(t, "client", 3)
	strangerKey, strangerCert := other.issue(t, "stranger", 4)
	tests := []struct {
		name            string
		key, cert, ca   string
		wantConnectFail bool
	}{
		{"client of the CA", clientKey, clientCert, filepath.Join(dir, "good-ca.pem"), false},
		{"server not signed by the client's CA", clientKey, clientCert, filepath.Join(dir, "other-ca.pem"), true},
		{"client not signed by the server's CA", strangerKey, strangerCert, filepath.Join(dir, "good-ca.pem"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadTLS(tt.key, tt.cert, tt.ca)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			nb, err := ConnectNorthbound(ctx, endpoint, logr.Discard(), WithTLS(cfg))
			if tt.wantConnectFail {
				if err == nil {
					nb.Close()
					t.Fatal("connected")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer nb.Close()
			if _, err := nb.EnsureSwitch(ctx, "ovn-overlay.ssl.layer2", nil); err != nil {
				t.Fatalf("write over ssl: %v", err)
			}
		})
	}
	if _, err := LoadTLS("", "", ""); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Errorf("LoadTLS without files: %v", err)
	}
}
