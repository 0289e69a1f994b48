package ovn

import (
	"slices"
	"strings"
	"testing"
)

func TestEndpoints(t *testing.T) {
	tests := []struct {
		address string
		want    []string
		err     string
	}{
		{"unix:/run/ovn/ovnnb_db.sock", []string{"unix:/run/ovn/ovnnb_db.sock"}, ""},
		{"tcp:10.0.0.1:6641,tcp:10.0.0.2:6641, tcp:10.0.0.3:6641", []string{"tcp:10.0.0.1:6641", "tcp:10.0.0.2:6641", "tcp:10.0.0.3:6641"}, ""},
		{"tcp:10.0.0.1:6641,", []string{"tcp:10.0.0.1:6641"}, ""},
		{"ssl:10.0.0.1:6641", []string{"ssl:10.0.0.1:6641"}, ""},
		{"10.0.0.1:6641", nil, "want unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT"},
		{"", nil, "names no endpoint"},
		{" , ", nil, "names no endpoint"},
	}
	for _, tt := range tests {
		got, err := Endpoints(tt.address)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Endpoints(%q) = %v, %v; want an error containing %q", tt.address, got, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Endpoints(%q) = %v, %v; want %v", tt.address, got, err, tt.want)
		}
	}
}
