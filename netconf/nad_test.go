package netconf

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestFlatten(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		want    map[string]string // keys of the flattened config
		wantErr error             // ErrNotOurs, or nil
		field   string            // a FieldError on this field
	}{
		{name: "single plugin", config: `{"cniVersion":"1.0.0","name":"n","type":"ovn-k8s-cni-overlay"}`,
			want: map[string]string{"name": `"n"`, "type": `"ovn-k8s-cni-overlay"`}},
		{name: "list: name and version from the list", config: `{"cniVersion":"0.3.0","name":"outer","plugins":[{"type":"ovn-k8s-cni-overlay","name":"","cniVersion":"1.0.0","topology":"layer2"}]}`,
			want: map[string]string{"name": `"outer"`, "cniVersion": `"0.3.0"`, "topology": `"layer2"`}},
		{name: "list: ours among others", config: `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"tuning"},{"type":"ovn-k8s-cni-overlay","topology":"layer3"}]}`,
			want: map[string]string{"type": `"ovn-k8s-cni-overlay"`, "topology": `"layer3"`}},
		{name: "list without version", config: `{"name":"n","plugins":[{"type":"ovn-k8s-cni-overlay","cniVersion":"1.0.0"}]}`,
			want: map[string]string{"name": `"n"`, "cniVersion": ""}},
		{name: "legacy type", config: `{"cniVersion":"0.3.1","name":"n","type":"ovn-kubernetes","subnet":"10.0.0.0/24"}`,
			want: map[string]string{"type": `"ovn-kubernetes"`}},
		{name: "another plugin", config: `{"cniVersion":"1.0.0","name":"n","type":"bridge"}`, wantErr: ErrNotOurs},
		{name: "list of another plugin", config: `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}`, wantErr: ErrNotOurs},
		{name: "empty list", config: `{"cniVersion":"1.0.0","name":"n","plugins":[]}`, field: "plugins"},
		{name: "list not a list", config: `{"cniVersion":"1.0.0","name":"n","plugins":{}}`, field: "plugins"},
		{name: "ours twice", config: `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ovn-k8s-cni-overlay"},{"type":"ovn-k8s-cni-overlay"}]}`, field: "plugins"},
		{name: "not JSON", config: `{invalid`, field: "(config)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flat, err := Flatten([]byte(tt.config))
			var fe *FieldError
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			case tt.field != "":
				if !errors.As(err, &fe) || fe.Field != tt.field {
					t.Fatalf("got %v, want a FieldError on %q", err, tt.field)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(flat, &got); err != nil {
				t.Fatal(err)
			}
			if _, isList := got["plugins"]; isList {
				t.Errorf("flattened config still has plugins: %s", flat)
			}
			for k, v := range tt.want {
				if string(got[k]) != v {
					t.Errorf("%s = %s, want %q (%s)", k, got[k], v, flat)
				}
			}
		})
	}
}

func TestParseNAD(t *testing.T) {
	tests := []struct {
		name, key, config string
		wantNAD           string
		mismatch          bool
	}{
		{name: "own name", key: "ns/a", config: `{"cniVersion":"1.0.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","netAttachDefName":"ns/a"}`, wantNAD: "ns/a"},
		{name: "missing name filled in", key: "ns/a", config: `{"cniVersion":"1.0.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`, wantNAD: "ns/a"},
		{name: "list form", key: "ns/a", config: `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ovn-k8s-cni-overlay","topology":"layer2","netAttachDefName":"ns/a"}]}`, wantNAD: "ns/a"},
		{name: "another NAD's name", key: "ns/a", config: `{"cniVersion":"1.0.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","netAttachDefName":"ns/b"}`, mismatch: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseNAD(tt.key, []byte(tt.config))
			var mm *NADNameMismatchError
			if tt.mismatch {
				if !errors.As(err, &mm) || mm.Conf.NADName != "ns/b" || mm.NAD != tt.key {
					t.Fatalf("got %v, want a mismatch error carrying the config", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.NADName != tt.wantNAD {
				t.Errorf("NADName %q, want %q", c.NADName, tt.wantNAD)
			}
		})
	}
}
