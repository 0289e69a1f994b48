package ovn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Option changes how ConnectNorthbound and ConnectSouthbound connect.
type Option func(*connectConfig)

type connectConfig struct {
	tls *tls.Config
}

// WithTLS makes ssl: endpoints usable, with this client certificate and
// CA (LoadTLS builds it from files).
func WithTLS(cfg *tls.Config) Option { return func(c *connectConfig) { c.tls = cfg } }

// LoadTLS builds the TLS settings of an OVN client from the files
// ovn-controller takes (--private-key, --certificate, --ca-cert): the
// client presents its certificate, and the server's must be signed by the
// CA. As in OVS and OVN's own clients, the server's name is not checked:
// certificates made with ovs-pki carry no host names, and endpoints are
// often IP addresses.
func LoadTLS(keyFile, certFile, caFile string) (*tls.Config, error) {
	if keyFile == "" || certFile == "" || caFile == "" {
		return nil, errors.New("TLS needs a private key, a certificate and a CA certificate")
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s and key %s: %w", certFile, keyFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA certificate %s holds no PEM certificate", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
		// Verified below against the CA, without a host name.
		InsecureSkipVerify: true, //nolint:gosec // the chain is verified in VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the OVSDB server presented no certificate")
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("server certificate: %w", err)
				}
				certs[i] = c
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
	}, nil
}
