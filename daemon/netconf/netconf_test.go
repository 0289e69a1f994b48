package netconf

import (
	"errors"
	"strings"
	"testing"
)

const (
	specLayer3 = SpecLayer3Config
	specLayer2 = SpecLayer2Config
	// The secondary-networks enhancement's two samples, verbatim: note the
	// trailing commas, which make them invalid JSON.
	enhancementFlat = `{
            "cniVersion": "0.3.1",
            "type": "ovn-kubernetes",
            "name": "tenant-overlay",
            "subnet": "10.10.10.0/24",
        }`
	enhancementExternal = `{
            "cniVersion": "0.3.1",
            "type": "ovn-kubernetes",
            "name": "tenant-overlay-ext-network",
            "subnet": "10.10.20.0/24",
            "has_external_connectivity": true,
        }`
)

func TestSpecExamples(t *testing.T) {
	l3, err := Parse([]byte(specLayer3))
	if err != nil {
		t.Fatalf("layer3 example: %v", err)
	}
	if l3.Topology != Layer3 || len(l3.Subnets) != 1 || l3.Subnets[0].CIDR.String() != "10.128.0.0/16" || l3.Subnets[0].HostPrefix != 24 ||
		l3.MTU != 1300 || l3.NADName != "left-one/l3-network" || l3.Name != "l3-network" || l3.CNIVersion != "0.3.1" {
		t.Errorf("layer3 example parsed as %+v", l3)
	}
	l2, err := Parse([]byte(specLayer2))
	if err != nil {
		t.Fatalf("layer2 example: %v", err)
	}
	if l2.Topology != Layer2 || len(l2.Subnets) != 1 || l2.Subnets[0].CIDR.String() != "10.128.0.0/24" || l2.Subnets[0].HostPrefix != 0 || l2.MTU != 1300 {
		t.Errorf("layer2 example parsed as %+v", l2)
	}
	for name, sample := range map[string]string{"flat": enhancementFlat, "external": enhancementExternal} {
		_, err := Parse([]byte(sample))
		assertFieldError(t, name, err, "(config)", "trailing comma")
	}
	// Without the trailing comma, the flat sample maps to layer2...
	flat, err := Parse([]byte(strings.Replace(enhancementFlat, `/24",`, `/24"`, 1)))
	if err != nil {
		t.Fatalf("fixed flat sample: %v", err)
	}
	if !flat.Legacy || flat.Topology != Layer2 || flat.Subnets[0].CIDR.String() != "10.10.10.0/24" {
		t.Errorf("fixed flat sample parsed as %+v", flat)
	}
	// ...and external connectivity is refused with a reason.
	_, err = Parse([]byte(strings.Replace(enhancementExternal, "true,", "true", 1)))
	assertFieldError(t, "fixed external sample", err, "has_external_connectivity", "remove")
}

func assertFieldError(t *testing.T, name string, err error, field, fixWord string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: want a FieldError on %q, got %v", name, field, err)
	}
	if fe.Field != field {
		t.Errorf("%s: error names field %q, want %q (%v)", name, fe.Field, field, err)
	}
	if !strings.Contains(err.Error(), fixWord) {
		t.Errorf("%s: error %q does not mention %q", name, err, fixWord)
	}
}

// base is a valid layer2 config; tests patch one field.
func conf(fields string) []byte {
	return []byte(`{"cniVersion":"1.0.0","name":"n","type":"ovn-k8s-cni-overlay"` + fields + `}`)
}

func TestInvalidConfigs(t *testing.T) {
	tests := []struct {
		name    string
		config  []byte
		field   string
		fixWord string
	}{
		{"not an object", []byte(`[1]`), "(config)", "JSON object"},
		{"garbage", []byte(`{"cniVersion":`), "(config)", "JSON"},
		{"missing cniVersion", []byte(`{"name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), "cniVersion", "0.3.1"},
		{"old cniVersion", []byte(`{"cniVersion":"0.2.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), "cniVersion", "1.1.0"},
		{"numeric cniVersion", []byte(`{"cniVersion":1,"name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), "cniVersion", "string"},
		{"missing name", []byte(`{"cniVersion":"1.0.0","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), "name", "name the network"},
		{"bad name", []byte(`{"cniVersion":"1.0.0","name":"a b","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), "name", "rename"},
		{"long name", []byte(`{"cniVersion":"1.0.0","name":"` + strings.Repeat("a", 129) + `","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), "name", "at most"},
		{"wrong type", []byte(`{"cniVersion":"1.0.0","name":"n","type":"bridge","topology":"layer2"}`), "type", "ovn-k8s-cni-overlay"},
		{"legacy type without legacy fields", []byte(`{"cniVersion":"1.0.0","name":"n","type":"ovn-kubernetes","topology":"layer2"}`), "type", "ovn-k8s-cni-overlay"},
		{"subnet and subnets", conf(`,"type":"ovn-kubernetes","subnet":"10.0.0.0/24","subnets":"10.0.0.0/24"`), "subnet", "only \"subnets\""},
		{"missing topology", conf(``), "topology", "layer2"},
		{"unknown topology", conf(`,"topology":"layer4"`), "topology", "layer3"},
		{"subnets not a string", conf(`,"topology":"layer2","subnets":["10.0.0.0/24"]`), "subnets", "comma-separated"},
		{"bad cidr", conf(`,"topology":"layer2","subnets":"10.0.0.300/24"`), "subnets", "10.128.0.0/24"},
		{"host bits set", conf(`,"topology":"layer2","subnets":"10.128.0.5/16"`), "subnets", `"10.128.0.0/16"`},
		{"empty entry", conf(`,"topology":"layer2","subnets":"10.0.0.0/24,,10.1.0.0/24"`), "subnets", "extra comma"},
		{"overlap", conf(`,"topology":"layer2","subnets":"10.0.0.0/16,10.0.1.0/24"`), "subnets", "without overlaps"},
		{"host prefix on layer2", conf(`,"topology":"layer2","subnets":"10.0.0.0/16/24"`), "subnets", "layer3"},
		{"layer3 without subnets", conf(`,"topology":"layer3"`), "subnets", "10.128.0.0/16/24"},
		{"host prefix not longer", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/16"`), "subnets", "10.0.0.0/16/24"},
		{"host prefix too long", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/31"`), "subnets", "at most /30"},
		{"v6 host prefix not longer", conf(`,"topology":"layer3","subnets":"fd00::/64/48"`), "subnets", "longer"},
		{"host prefix not a number", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/x"`), "subnets", "cidr/hostPrefix"},
		{"exclude without subnets", conf(`,"topology":"layer2","excludeSubnets":"10.0.0.0/29"`), "excludeSubnets", "add \"subnets\""},
		{"exclude outside", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","excludeSubnets":"10.1.0.0/29"`), "excludeSubnets", "subnets"},
		{"exclude wider than subnet", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","excludeSubnets":"10.0.0.0/16"`), "excludeSubnets", "subnets"},
		{"exclude garbage", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","excludeSubnets":"nope"`), "excludeSubnets", "10.128.0.1"},
		{"mtu as string", conf(`,"topology":"layer2","mtu":"1300"`), "mtu", "without quotes"},
		{"mtu negative", conf(`,"topology":"layer2","mtu":-1`), "mtu", "omit it"},
		{"mtu too small for ipv6", conf(`,"topology":"layer2","subnets":"fd00::/64","mtu":1200`), "mtu", "1280"},
		{"mtu fractional", conf(`,"topology":"layer2","mtu":1300.5`), "mtu", "whole number"},
		{"nad name without namespace", conf(`,"topology":"layer2","netAttachDefName":"l3-network"`), "netAttachDefName", "left-one/l3-network"},
		{"nad name uppercase", conf(`,"topology":"layer2","netAttachDefName":"Left/net"`), "netAttachDefName", "<namespace>/<name>"},
		{"persistent IPs on layer3", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/24","allowPersistentIPs":true`), "allowPersistentIPs", "layer2"},
		{"persistent IPs not bool", conf(`,"topology":"layer2","allowPersistentIPs":"yes"`), "allowPersistentIPs", "true or false"},
		{"vlan on layer2", conf(`,"topology":"layer2","vlanID":10`), "vlanID", "localnet"},
		{"vlan out of range", conf(`,"topology":"localnet","vlanID":4095`), "vlanID", "802.1Q"},
		{"physical network on layer2", conf(`,"topology":"layer2","physicalNetworkName":"physnet"`), "physicalNetworkName", "localnet"},
		{"external connectivity", conf(`,"topology":"layer2","has_external_connectivity":true`), "has_external_connectivity", "remove"},
		{"runtime ip garbage", conf(`,"topology":"layer2","runtimeConfig":{"ips":["x"]}`), "runtimeConfig.ips", "10.128.0.10/24"},
		{"runtime ip twice", conf(`,"topology":"layer2","runtimeConfig":{"ips":["10.0.0.1/24","10.0.0.1/24"]}`), "runtimeConfig.ips", "once"},
		{"runtime mac multicast", conf(`,"topology":"layer2","runtimeConfig":{"mac":"01:00:5e:00:00:01"}`), "runtimeConfig.mac", "unicast"},
		{"runtime mac garbage", conf(`,"topology":"layer2","runtimeConfig":{"mac":"zz"}`), "runtimeConfig.mac", "6-byte"},
		{"runtime config wrong shape", conf(`,"topology":"layer2","runtimeConfig":{"ips":"10.0.0.1"}`), "runtimeConfig", "list of strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.config)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			assertFieldError(t, tt.name, err, tt.field, tt.fixWord)
		})
	}
}

func TestValidConfigs(t *testing.T) {
	tests := []struct {
		name   string
		config []byte
		check  func(*NetConf) bool
	}{
		{"layer2 without subnets", conf(`,"topology":"layer2"`), func(c *NetConf) bool { return len(c.Subnets) == 0 }},
		{"dual stack with spaces", conf(`,"topology":"layer2","subnets":" 10.0.0.0/24 , fd00::/64 "`), func(c *NetConf) bool {
			return len(c.Subnets) == 2 && c.Subnets[1].CIDR.String() == "fd00::/64"
		}},
		{"layer3 default host prefixes", conf(`,"topology":"layer3","subnets":"10.0.0.0/16,fd00:10::/48"`), func(c *NetConf) bool {
			return c.Subnets[0].HostPrefix == 24 && c.Subnets[1].HostPrefix == 64
		}},
		{"layer3 v6 host prefix", conf(`,"topology":"layer3","subnets":"fd00:10::/48/64"`), func(c *NetConf) bool { return c.Subnets[0].HostPrefix == 64 }},
		{"exclude bare IP", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","excludeSubnets":"10.0.0.1, 10.0.0.8/29"`), func(c *NetConf) bool {
			return len(c.ExcludeSubnets) == 2 && c.ExcludeSubnets[0].String() == "10.0.0.1/32"
		}},
		{"localnet with vlan", conf(`,"topology":"localnet","vlanID":100,"physicalNetworkName":"physnet"`), func(c *NetConf) bool {
			return c.VLANID == 100 && c.PhysicalNetworkName == "physnet"
		}},
		{"runtime config", conf(`,"topology":"layer2","runtimeConfig":{"ips":["10.0.0.5/24","fd00::5"],"mac":"0a:58:0a:00:00:05"}`), func(c *NetConf) bool {
			return len(c.RuntimeConfig.IPs) == 2 && c.RuntimeConfig.IPs[1].String() == "fd00::5/128" && c.RuntimeConfig.MAC.String() == "0a:58:0a:00:00:05"
		}},
		{"persistent IPs", conf(`,"topology":"layer2","allowPersistentIPs":true`), func(c *NetConf) bool { return c.AllowPersistentIPs }},
		{"unknown fields ignored, prevResult kept", conf(`,"topology":"layer2","capabilities":{"ips":true},"prevResult":{"cniVersion":"1.0.0"}`), func(c *NetConf) bool {
			return len(c.PrevResult) > 0
		}},
		{"every version", []byte(`{"cniVersion":"1.1.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), func(c *NetConf) bool { return c.CNIVersion == "1.1.0" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.config)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("parsed as %+v", c)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	fp := func(s string) string {
		c, err := Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return c.Fingerprint()
	}
	a := fp(`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24,fd00::/64","netAttachDefName":"a/n"}`)
	same := fp(`{"cniVersion":"1.0.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"fd00::/64, 10.0.0.0/24","netAttachDefName":"b/n","runtimeConfig":{"ips":["10.0.0.9/24"]}}`)
	if a != same {
		t.Error("cniVersion, NAD name, runtimeConfig or subnet order changed the fingerprint")
	}
	for _, other := range []string{
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24"}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24,fd00::/64","mtu":1300}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24,fd00::/64","excludeSubnets":"10.0.0.1"}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.0.0.0/24/28,fd00::/64/80"}`,
	} {
		if fp(other) == a {
			t.Errorf("%s has the same fingerprint as a different shape", other)
		}
	}
}

func TestParseArgs(t *testing.T) {
	a, err := ParseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=left-one;K8S_POD_NAME=tinypod;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1;IP=10.0.0.5/24,fd00::5/64;MAC=0a:58:0a:00:00:05;OTHER=x")
	if err != nil {
		t.Fatal(err)
	}
	if a.PodNamespace != "left-one" || a.PodName != "tinypod" || a.InfraContainerID != "abc" || a.PodUID != "u-1" ||
		len(a.IPs) != 2 || a.IPs[1].String() != "fd00::5/64" || a.MAC.String() != "0a:58:0a:00:00:05" {
		t.Fatalf("parsed %+v", a)
	}
	for _, tt := range []struct{ args, field string }{
		{"IP=nope", "CNI_ARGS IP"},
		{"MAC=ff:ff:ff:ff:ff:ff", "CNI_ARGS MAC"},
	} {
		_, err := ParseArgs(tt.args)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("ParseArgs(%q) = %v, want a FieldError on %s", tt.args, err, tt.field)
		}
	}
	if a, err := ParseArgs(""); err != nil || a.PodName != "" {
		t.Errorf("empty CNI_ARGS: %+v %v", a, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{specLayer2, specLayer3, enhancementFlat, `{}`, `{"cniVersion":"1.0.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.0.0.0/8/30"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err == nil && c.Name == "" {
			t.Fatalf("accepted a config without a name: %q", data)
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
		}
	})
}
