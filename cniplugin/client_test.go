package cniplugin

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		status  int
		body    string
		wantErr string
	}{
		{name: "content length", in: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}trailing", status: 200, body: "{}"},
		{name: "to the end without length", in: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\n", status: 200, body: "{\"a\":1}\n"},
		{name: "header names any case", in: "HTTP/1.0 500 Internal\r\ncontent-length: 1\r\n\r\nx", status: 500, body: "x"},
		{name: "bare newlines", in: "HTTP/1.0 200 OK\nContent-Length: 1\n\nx", status: 200, body: "x"},
		{name: "not http", in: "SSH-2.0-OpenSSH\r\n", wantErr: "malformed response status"},
		{name: "nothing", in: "", wantErr: "read response status"},
		{name: "headers cut", in: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n", wantErr: "read response headers"},
		{name: "body cut", in: "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n{}", wantErr: "read response body"},
		{name: "negative length", in: "HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: "Content-Length"},
		{name: "huge length", in: "HTTP/1.0 200 OK\r\nContent-Length: 99999999999\r\n\r\n", wantErr: "Content-Length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, err := readResponse(bufio.NewReader(strings.NewReader(tt.in)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || status != tt.status || string(body) != tt.body {
				t.Fatalf("got %d %q %v, want %d %q", status, body, err, tt.status, tt.body)
			}
		})
	}
}

// TestDoAgainstNetHTTP: the hand-written client and the daemon's net/http
// server understand each other, for results small enough to get a
// Content-Length and for ones large enough that an HTTP/1.1 reply would be
// chunked.
func TestDoAgainstNetHTTP(t *testing.T) {
	for _, size := range []int{0, 100, 64 << 10} {
		sock := filepath.Join(t.TempDir(), "cni.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		result := `{"cniVersion":"1.1.0","dns":{"domain":"` + strings.Repeat("x", size) + `"}}`
		var got cniproto.Request
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != cniproto.Path {
				http.Error(w, "wrong request", http.StatusBadRequest)
				return
			}
			if err := jsonDecode(r, &got); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			// Written in pieces, as a streaming encoder would.
			_, _ = w.Write([]byte(`{"result":`))
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte(result + `}`))
		})}
		go func() { _ = srv.Serve(l) }()
		c := &Client{Socket: sock}
		resp, err := c.Do(context.Background(), cniproto.Request{Command: "ADD", ContainerID: "c1", Config: []byte(`{"name":"n"}`)})
		srv.Close()
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if string(resp.Result) != result || got.ContainerID != "c1" || string(got.Config) != `{"name":"n"}` {
			t.Fatalf("size %d: result %.80q, request %+v", size, resp.Result, got)
		}
	}
}

func jsonDecode(r *http.Request, v any) error { return json.NewDecoder(r.Body).Decode(v) }
