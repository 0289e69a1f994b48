package netconf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
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
	ln, err := Parse([]byte(SpecLocalnetConfig))
	if err != nil {
		t.Fatalf("localnet example: %v", err)
	}
	if ln.Topology != Localnet || ln.VLANID != 33 || ln.PhysicalNetwork() != "tenantblack" || ln.Subnets[0].CIDR.String() != "202.10.130.112/28" || ln.MTU != 1500 {
		t.Errorf("localnet example parsed as %+v", ln)
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
	// ...and so does the external one, with external connectivity on the
	// operator's physical network.
	ext, err := Parse([]byte(strings.Replace(enhancementExternal, "true,", "true", 1)))
	if err != nil {
		t.Fatalf("fixed external sample: %v", err)
	}
	if ext.Topology != Layer2 || ext.External == nil || ext.External.PhysicalNetwork != "" || ext.Subnets[0].CIDR.String() != "10.10.20.0/24" {
		t.Errorf("fixed external sample parsed as %+v", ext)
	}
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
		{"empty entry", conf(`,"topology":"layer2","subnets":"10.0.0.0/24,,10.1.0.0/24"`), "subnets", "extra comma"},
		{"overlap", conf(`,"topology":"layer2","subnets":"10.0.0.0/16,10.0.1.0/24"`), "subnets", "without overlaps"},
		{"host prefix on layer2", conf(`,"topology":"layer2","subnets":"10.0.0.0/16/24"`), "subnets", "layer3"},
		{"layer3 without subnets", conf(`,"topology":"layer3"`), "subnets", "10.128.0.0/16/24"},
		{"host prefix not longer", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/16"`), "subnets", "10.0.0.0/16/24"},
		{"host prefix too long", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/31"`), "subnets", "at most /30"},
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
		{"vlan out of range", conf(`,"topology":"localnet","vlanID":4095`), "vlanID", "802.1Q"},
		{"external without subnets", conf(`,"topology":"layer2","has_external_connectivity":true`), "has_external_connectivity", "add \"subnets\""},
		{"external on localnet", conf(`,"topology":"localnet","subnets":"10.1.0.0/24","externalPrefixes":"192.0.2.0/24"`), "externalPrefixes", "layer2 or layer3"},
		{"external flag contradicts", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","has_external_connectivity":false,"externalPrefixes":"192.0.2.0/24"`), "has_external_connectivity", "set it to true"},
		{"external gateway not an IP", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","externalGatewayIPs":"gw"`), "externalGatewayIPs", "172.30.0.10"},
		{"external gateway inside the network", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","externalGatewayIPs":"10.1.0.1"`), "externalGatewayIPs", "external network"},
		{"external gateways of one family", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","externalGatewayIPs":"172.30.0.10,172.30.0.11"`), "externalGatewayIPs", "one IPv4 and one IPv6"},
		{"external default route", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","externalPrefixes":"0.0.0.0/0"`), "externalPrefixes", "default-route"},
		{"external prefix overlaps", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","externalPrefixes":"10.0.0.0/8"`), "externalPrefixes", "outside the network"},
		{"external prefix garbage", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","externalPrefixes":"192.0.2.0"`), "externalPrefixes", "192.0.2.0/24"},
		{"DHCP on layer3", conf(`,"topology":"layer3","subnets":"10.1.0.0/16/24","enableDHCP":true`), "enableDHCP", "layer2"},
		{"DHCP without subnets", conf(`,"topology":"layer2","enableDHCP":true`), "enableDHCP", "add \"subnets\""},
		{"DHCP not a bool", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","enableDHCP":"yes"`), "enableDHCP", "true or false"},
		{"DHCP lease too short", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","enableDHCP":true,"dhcpLeaseTime":5`), "dhcpLeaseTime", "3600"},
		{"DHCP lease without DHCP", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","dhcpLeaseTime":600`), "dhcpLeaseTime", "enableDHCP"},
		{"DNS servers without DHCP", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","dnsServers":"10.0.0.53"`), "dnsServers", "enableDHCP"},
		{"DNS server garbage", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","enableDHCP":true,"dnsServers":"10.0.0.53,dns"`), "dnsServers", "comma-separated"},
		{"runtime ip garbage", conf(`,"topology":"layer2","runtimeConfig":{"ips":["x"]}`), "runtimeConfig.ips", "10.128.0.10/24"},
		{"runtime ip twice", conf(`,"topology":"layer2","runtimeConfig":{"ips":["10.0.0.1/24","10.0.0.1/24"]}`), "runtimeConfig.ips", "once"},
		{"runtime mac multicast", conf(`,"topology":"layer2","runtimeConfig":{"mac":"01:00:5e:00:00:01"}`), "runtimeConfig.mac", "unicast"},
		{"runtime mac garbage", conf(`,"topology":"layer2","runtimeConfig":{"mac":"zz"}`), "runtimeConfig.mac", "6-byte"},
		{"runtime config wrong shape", conf(`,"topology":"layer2","runtimeConfig":{"ips":"10.0.0.1"}`), "runtimeConfig", "write e.g."},
		{"runtime mac broadcast", conf(`,"topology":"layer2","runtimeConfig":{"mac":"ff:ff:ff:ff:ff:ff"}`), "runtimeConfig.mac", "unicast"},
		{"runtime mac zero", conf(`,"topology":"layer2","runtimeConfig":{"mac":"00:00:00:00:00:00"}`), "runtimeConfig.mac", "unicast"},
		{"trailing comma in array", []byte(`{"cniVersion":"1.0.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","x":[1,2, ]}`), "(config)", "remove the trailing comma"},
		{"empty config", []byte(``), "(config)", "JSON"},
		{"name with slash", []byte(`{"cniVersion":"1.0.0","name":"a/b","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), "name", "rename"},
		{"missing type", []byte(`{"cniVersion":"1.0.0","name":"n","topology":"layer2"}`), "type", "ovn-k8s-cni-overlay"},
		{"legacy type with null subnet", []byte(`{"cniVersion":"1.0.0","name":"n","type":"ovn-kubernetes","subnet":null}`), "type", "ovn-k8s-cni-overlay"},
		{"legacy form with layer3", []byte(`{"cniVersion":"1.0.0","name":"n","type":"ovn-kubernetes","subnet":"10.0.0.0/16","topology":"layer3"}`), "topology", "\"subnets\" instead of \"subnet\""},
		{"legacy external connectivity not bool", []byte(`{"cniVersion":"1.0.0","name":"n","type":"ovn-kubernetes","has_external_connectivity":"no"}`), "has_external_connectivity", "true or false"},
		{"topology not a string", conf(`,"topology":2`), "topology", "string"},
		{"v6 host prefix on localnet", conf(`,"topology":"localnet","subnets":"fd00:10::/48/64"`), "subnets", "drop the /hostPrefix"},
		{"explicit host prefix zero", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/0"`), "subnets", "10.0.0.0/16/24"},
		{"empty host prefix", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/"`), "subnets", "cidr/hostPrefix"},
		{"signed host prefix", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/+24"`), "subnets", "cidr/hostPrefix"},
		{"v4 host prefix 32", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/32"`), "subnets", "at most /30"},
		{"cidr without length", conf(`,"topology":"layer2","subnets":"10.0.0.0"`), "subnets", "10.128.0.0/24"},
		{"too many slashes", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/24/28"`), "subnets", "10.128.0.0/24"},
		{"dual stack overlap v6", conf(`,"topology":"layer2","subnets":"10.0.0.0/24,fd00::/48,fd00:0:0:1::/64"`), "subnets", "without overlaps"},
		{"duplicate subnet", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/24,10.0.0.0/16/24"`), "subnets", "without overlaps"},
		{"only commas", conf(`,"topology":"layer2","subnets":","`), "subnets", "extra comma"},
		{"exclude empty entry", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","excludeSubnets":"10.0.0.1,"`), "excludeSubnets", "extra comma"},
		{"exclude not a string", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","excludeSubnets":["10.0.0.1"]`), "excludeSubnets", "string"},
		{"mtu too small for ipv4", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","mtu":575`), "mtu", "576"},
		{"mtu too large", conf(`,"topology":"layer2","mtu":65536`), "mtu", "65535"},
		{"mtu bool", conf(`,"topology":"layer2","mtu":true`), "mtu", "without quotes"},
		{"nad name empty parts", conf(`,"topology":"layer2","netAttachDefName":"/"`), "netAttachDefName", "<namespace>/<name>"},
		{"nad name dotted namespace", conf(`,"topology":"layer2","netAttachDefName":"a.b/net"`), "netAttachDefName", "left-one/l3-network"},
		{"nad name three parts", conf(`,"topology":"layer2","netAttachDefName":"a/b/c"`), "netAttachDefName", "<namespace>/<name>"},
		{"vlan as string", conf(`,"topology":"localnet","vlanID":"10"`), "vlanID", "without quotes"},
		{"physical network not a string", conf(`,"topology":"localnet","physicalNetworkName":1`), "physicalNetworkName", "string"},
		// Ranges pods cannot live in (refused at parse time with error 7,
		// not handed out or failing later with 999).
		{"v4 /0", conf(`,"topology":"layer2","subnets":"0.0.0.0/0"`), "subnets", "private range"},
		{"v6 /0", conf(`,"topology":"layer2","subnets":"::/0"`), "subnets", "private range"},
		{"v4 /0 layer3", conf(`,"topology":"layer3","subnets":"0.0.0.0/0/24"`), "subnets", "private range"},
		{"loopback", conf(`,"topology":"layer2","subnets":"127.0.0.0/8"`), "subnets", "private range"},
		{"inside loopback", conf(`,"topology":"layer2","subnets":"127.1.0.0/24"`), "subnets", "private range"},
		{"multicast", conf(`,"topology":"layer2","subnets":"224.0.0.0/24"`), "subnets", "private range"},
		{"v4 link-local", conf(`,"topology":"layer2","subnets":"169.254.0.0/16"`), "subnets", "private range"},
		{"v6 link-local", conf(`,"topology":"layer2","subnets":"fe80::/64"`), "subnets", "private range"},
		{"v6 multicast", conf(`,"topology":"layer2","subnets":"ff02::/64"`), "subnets", "private range"},
		{"v4-mapped", conf(`,"topology":"layer2","subnets":"::ffff:10.0.0.0/120"`), "subnets", "private range"},
		{"this network", conf(`,"topology":"layer2","subnets":"0.0.0.0/24"`), "subnets", "private range"},
		{"reserved class E", conf(`,"topology":"layer2","subnets":"240.0.0.0/24"`), "subnets", "private range"},
		{"v4 /32", conf(`,"topology":"layer2","subnets":"10.0.0.1/32"`), "subnets", "at most /30"},
		{"v4 /31", conf(`,"topology":"layer2","subnets":"10.0.0.0/31"`), "subnets", "at most /30"},
		{"v6 /128", conf(`,"topology":"layer2","subnets":"fd00::1/128"`), "subnets", "at most /126"},
		{"exclude covers the subnet", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","excludeSubnets":"10.0.0.0/24"`), "excludeSubnets", "list only part"},
		{"exclude covers one of two", conf(`,"topology":"layer2","subnets":"10.0.0.0/24,10.1.0.0/24","excludeSubnets":"10.1.0.0/24"`), "excludeSubnets", "list only part"},
		{"static loopback", conf(`,"topology":"layer2","runtimeConfig":{"ips":["127.0.0.1/8"]}`), "runtimeConfig.ips", "subnets"},
		{"static multicast", conf(`,"topology":"layer2","runtimeConfig":{"ips":["224.0.0.1/24"]}`), "runtimeConfig.ips", "subnets"},
		{"static unspecified", conf(`,"topology":"layer2","runtimeConfig":{"ips":["0.0.0.0"]}`), "runtimeConfig.ips", "subnets"},
		// What OVN-Kubernetes refuses too, or acts on where this plugin
		// does not: refused with what to do instead.
		{"v6 host prefix not /64", conf(`,"topology":"layer3","subnets":"fd00::/48/80"`), "subnets", "/64"},
		{"v6 host prefix not longer", conf(`,"topology":"layer3","subnets":"fd00::/64/48"`), "subnets", "fd00::/48/64"},
		{"v6 host prefix beyond 128", conf(`,"topology":"layer3","subnets":"fd00::/48/129"`), "subnets", "/64"},
		{"v4 host prefixes differ", conf(`,"topology":"layer3","subnets":"10.1.0.0/16/24,10.2.0.0/16/26"`), "subnets", "one per-node prefix"},
		{"role primary", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","role":"primary"`), "role", "UserDefinedNetwork"},
		{"role capitalised", conf(`,"topology":"layer3","subnets":"10.0.0.0/16","role":"Primary"`), "role", "lower case"},
		{"role not a string", conf(`,"topology":"layer2","role":1`), "role", "string"},
		{"ipam with a type", conf(`,"topology":"layer2","ipam":{"type":"whereabouts"}`), "ipam", "\"subnets\""},
		{"ipam a string", conf(`,"topology":"layer2","ipam":"x"`), "ipam", "remove \"ipam\""},
		{"reserved name default", conf(`,"topology":"layer2","name":"default"`), "name", "another name"},
		{"reserved name ovn-kubernetes", []byte(`{"cniVersion":"1.0.0","name":"ovn-kubernetes","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), "name", "another name"},
		{"reserved on layer3", conf(`,"topology":"layer3","subnets":"10.0.0.0/16","reservedSubnets":"10.0.0.0/28"`), "reservedSubnets", "excludeSubnets"},
		{"reserved outside", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","reservedSubnets":"10.1.0.0/28"`), "reservedSubnets", "subnets"},
		{"reserved without subnets", conf(`,"topology":"layer2","reservedSubnets":"10.1.0.0/28"`), "reservedSubnets", "add \"subnets\""},
		{"reserved covers the subnet", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","reservedSubnets":"10.0.0.0/23"`), "reservedSubnets", "subnets"},
		{"join subnet on localnet", conf(`,"topology":"localnet","joinSubnet":"100.66.0.0/16"`), "joinSubnet", "layer2 and layer3"},
		{"infrastructure subnets on layer3", conf(`,"topology":"layer3","subnets":"10.0.0.0/16","infrastructureSubnets":"10.0.0.0/30"`), "infrastructureSubnets", "layer2"},
		{"default gateway on localnet", conf(`,"topology":"localnet","defaultGatewayIPs":"10.0.0.1"`), "defaultGatewayIPs", "layer2"},
		{"transport evpn", conf(`,"topology":"layer2","transport":"evpn"`), "transport", "remove"},
		{"outbound SNAT", conf(`,"topology":"layer2","outboundSNAT":"enabled"`), "outboundSNAT", "remove"},
		{"device ID", conf(`,"topology":"layer2","deviceID":"0000:03:00.1"`), "deviceID", "resourceName"},
		{"vlan negative", conf(`,"topology":"localnet","vlanID":-1`), "vlanID", "802.1Q"},
		{"static v6 link-local", conf(`,"topology":"layer2","runtimeConfig":{"ips":["fe80::5/64"]}`), "runtimeConfig.ips", "subnets"},
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
		{"version 0.4.0", []byte(`{"cniVersion":"0.4.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), func(c *NetConf) bool { return c.CNIVersion == "0.4.0" }},
		{"name charset and max length", []byte(`{"cniVersion":"1.0.0","name":"A.b_c-9` + strings.Repeat("x", 121) + `","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), func(c *NetConf) bool {
			return len(c.Name) == 128
		}},
		{"sorted keys as Multus writes them", []byte(`{"cniVersion":"0.3.1","mtu":1300,"name":"n","netAttachDefName":"ns/n","subnets":"10.0.0.0/24","topology":"layer2","type":"ovn-k8s-cni-overlay"}`), func(c *NetConf) bool {
			return c.MTU == 1300 && c.NADName == "ns/n"
		}},
		{"null fields are absent", conf(`,"topology":"layer2","subnets":null,"mtu":null,"prevResult":null,"runtimeConfig":null`), func(c *NetConf) bool {
			return c.Subnets == nil && c.MTU == 0 && c.PrevResult == nil
		}},
		{"mtu zero means default", conf(`,"topology":"layer2","mtu":0`), func(c *NetConf) bool { return c.MTU == 0 }},
		{"mtu bounds v4", conf(`,"topology":"layer2","subnets":"10.0.0.0/24","mtu":576`), func(c *NetConf) bool { return c.MTU == 576 }},
		{"mtu bounds v6", conf(`,"topology":"layer2","subnets":"fd00::/64","mtu":1280`), func(c *NetConf) bool { return c.MTU == 1280 }},
		{"mtu max", conf(`,"topology":"layer2","mtu":65535`), func(c *NetConf) bool { return c.MTU == 65535 }},
		{"layer3 explicit v4 host prefix", conf(`,"topology":"layer3","subnets":"10.0.0.0/16/30"`), func(c *NetConf) bool { return c.Subnets[0].HostPrefix == 30 }},
		{"layer3 dual stack", conf(`,"topology":"layer3","subnets":"10.128.0.0/16/24, fd00:10::/48/64"`), func(c *NetConf) bool {
			return len(c.Subnets) == 2 && c.Subnets[1].CIDR.String() == "fd00:10::/48" && c.Subnets[1].HostPrefix == 64
		}},
		{"localnet subnets without host prefix", conf(`,"topology":"localnet","subnets":"192.168.0.0/24"`), func(c *NetConf) bool {
			return c.Subnets[0].HostPrefix == 0 && c.VLANID == 0 && c.PhysicalNetworkName == ""
		}},
		{"localnet vlan bounds", conf(`,"topology":"localnet","vlanID":4094`), func(c *NetConf) bool { return c.VLANID == 4094 }},
		{"localnet persistent IPs", conf(`,"topology":"localnet","allowPersistentIPs":true`), func(c *NetConf) bool { return c.AllowPersistentIPs }},
		{"empty physical network on layer2", conf(`,"topology":"layer2","physicalNetworkName":""`), func(c *NetConf) bool { return c.PhysicalNetworkName == "" }},
		{"persistent IPs false on layer3", conf(`,"topology":"layer3","subnets":"10.0.0.0/16","allowPersistentIPs":false`), func(c *NetConf) bool { return !c.AllowPersistentIPs }},
		{"nad name dotted name", conf(`,"topology":"layer2","netAttachDefName":"left-one/net.v1"`), func(c *NetConf) bool { return c.NADName == "left-one/net.v1" }},
		{"exclude v6 and host bits", conf(`,"topology":"layer3","subnets":"10.0.0.0/16,fd00::/48","excludeSubnets":"fd00::1,10.0.1.7/24"`), func(c *NetConf) bool {
			return c.ExcludeSubnets[0].String() == "fd00::1/128" && c.ExcludeSubnets[1].String() == "10.0.1.0/24"
		}},
		{"bare runtime IPs take the subnet length", conf(`,"topology":"layer2","subnets":"10.0.0.0/24,fd00::/64","runtimeConfig":{"ips":["10.0.0.5","fd00::5","192.168.1.1","10.0.0.6/32"]}`), func(c *NetConf) bool {
			got := fmt.Sprint(c.RuntimeConfig.IPs)
			return got == "[10.0.0.5/24 fd00::5/64 192.168.1.1/32 10.0.0.6/24]"
		}},
		{"bare runtime IP on layer3 takes the node prefix", conf(`,"topology":"layer3","subnets":"10.128.0.0/16/24","runtimeConfig":{"ips":["10.128.3.5","10.128.3.6/16"]}`), func(c *NetConf) bool {
			return fmt.Sprint(c.RuntimeConfig.IPs) == "[10.128.3.5/24 10.128.3.6/16]"
		}},
		{"runtime config extra keys", conf(`,"topology":"layer2","runtimeConfig":{"portMappings":[],"mac":"02:00:00:00:00:01"}`), func(c *NetConf) bool {
			return c.RuntimeConfig.MAC.String() == "02:00:00:00:00:01" && c.RuntimeConfig.IPs == nil
		}},
		{"legacy form with explicit layer2 and external connectivity false", []byte(`{"cniVersion":"0.3.1","name":"n","type":"ovn-kubernetes","topology":"layer2","subnet":"10.10.10.0/24","has_external_connectivity":false}`), func(c *NetConf) bool {
			return c.Legacy && c.Topology == Layer2 && c.Type == "ovn-kubernetes"
		}},
		{"external connectivity", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","has_external_connectivity":true`), func(c *NetConf) bool {
			return c.External != nil && c.External.PhysicalNetwork == "" && c.External.GatewayIPs == nil && c.External.Prefixes == nil
		}},
		{"external fields alone ask for it", conf(`,"topology":"layer3","subnets":"10.1.0.0/16","externalPhysicalNetworkName":"dc","externalGatewayIPs":"172.30.0.10, fd00:30::10","externalPrefixes":"192.0.2.0/24,198.51.100.7/24"`), func(c *NetConf) bool {
			x := c.External
			return x != nil && x.PhysicalNetwork == "dc" && fmt.Sprint(x.GatewayIPs) == "[172.30.0.10 fd00:30::10]" && fmt.Sprint(x.Prefixes) == "[192.0.2.0/24 198.51.100.0/24]" &&
				noted(c, "host bits")
		}},
		{"DHCP with defaults", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","enableDHCP":true`), func(c *NetConf) bool {
			return c.DHCP != nil && c.DHCP.LeaseTime == DefaultDHCPLeaseTime && c.DHCP.DNSServers == nil
		}},
		{"DHCP on localnet with lease and DNS servers", conf(`,"topology":"localnet","subnets":"10.1.0.0/24,fd00:1::/64","enableDHCP":true,"dhcpLeaseTime":600,"dnsServers":"10.0.0.53, fd00::53"`), func(c *NetConf) bool {
			return c.DHCP != nil && c.DHCP.LeaseTime == 600 && fmt.Sprint(c.DHCP.DNSServers) == "[10.0.0.53 fd00::53]"
		}},
		{"DHCP off", conf(`,"topology":"layer2","subnets":"10.1.0.0/24","enableDHCP":false`), func(c *NetConf) bool { return c.DHCP == nil }},
		{"legacy form without subnet", []byte(`{"cniVersion":"0.3.1","name":"n","type":"ovn-kubernetes","has_external_connectivity":false}`), func(c *NetConf) bool {
			return c.Legacy && c.Topology == Layer2 && len(c.Subnets) == 0
		}},
		// OVN-Kubernetes' NADs, as its e2e suite and unit tests write them.
		{"missing cniVersion reads as 0.1.0", []byte(`{"name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), func(c *NetConf) bool {
			return c.CNIVersion == "0.1.0" && noted(c, "cniVersion is not set")
		}},
		{"empty cniVersion reads as 0.1.0", []byte(`{"cniVersion":"","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), func(c *NetConf) bool { return c.CNIVersion == "0.1.0" }},
		{"version 0.3.0", []byte(`{"cniVersion":"0.3.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), func(c *NetConf) bool { return c.CNIVersion == "0.3.0" }},
		{"version 0.2.0", []byte(`{"cniVersion":"0.2.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2"}`), func(c *NetConf) bool { return c.CNIVersion == "0.2.0" }},
		{"host bits masked", conf(`,"topology":"layer2","subnets":"10.128.0.5/16"`), func(c *NetConf) bool {
			return c.Subnets[0].CIDR.String() == "10.128.0.0/16" && noted(c, `read as "10.128.0.0/16"`)
		}},
		{"host bits masked with host prefix", conf(`,"topology":"layer3","subnets":"10.128.0.5/16/24"`), func(c *NetConf) bool {
			return c.Subnets[0].CIDR.String() == "10.128.0.0/16" && c.Subnets[0].HostPrefix == 24 && noted(c, `read as "10.128.0.0/16/24"`)
		}},
		{"v6 host bits masked", conf(`,"topology":"layer2","subnets":"fd00::1/64"`), func(c *NetConf) bool { return c.Subnets[0].CIDR.String() == "fd00::/64" }},
		{"legacy subnet host bits masked", []byte(`{"cniVersion":"1.0.0","name":"n","type":"ovn-kubernetes","subnet":"10.0.0.1/24"}`), func(c *NetConf) bool {
			return c.Subnets[0].CIDR.String() == "10.0.0.0/24" && noted(c, "subnet: ")
		}},
		{"vlan zero on localnet is untagged", conf(`,"topology":"localnet","vlanID":0`), func(c *NetConf) bool { return c.VLANID == 0 && len(c.Notes) == 0 }},
		{"vlan zero on layer2", conf(`,"topology":"layer2","vlanID":0`), func(c *NetConf) bool { return c.VLANID == 0 && len(c.Notes) == 0 }},
		{"vlan on layer2 ignored", conf(`,"topology":"layer2","vlanID":10`), func(c *NetConf) bool { return c.VLANID == 0 && noted(c, "vlanID 10 is ignored") }},
		{"physical network on layer2 ignored", conf(`,"topology":"layer2","physicalNetworkName":"physnet"`), func(c *NetConf) bool {
			return c.PhysicalNetworkName == "" && noted(c, "physicalNetworkName \"physnet\" is ignored")
		}},
		{"role secondary", conf(`,"topology":"layer2","role":"secondary"`), func(c *NetConf) bool { return c.Role == RoleSecondary }},
		{"empty ipam", conf(`,"topology":"layer2","ipam":{}`), func(c *NetConf) bool { return true }},
		{"reserved subnets", conf(`,"topology":"layer2","subnets":"192.168.1.0/24, fda6::/64","reservedSubnets":"192.168.1.0/28, fda6::0/80"`), func(c *NetConf) bool {
			return fmt.Sprint(c.ReservedSubnets) == "[192.168.1.0/28 fda6::/80]"
		}},
		{"reserved on localnet", conf(`,"topology":"localnet","subnets":"192.168.1.0/24","reservedSubnets":"192.168.1.5"`), func(c *NetConf) bool {
			return fmt.Sprint(c.ReservedSubnets) == "[192.168.1.5/32]"
		}},
		{"join subnet on layer2 noted", conf(`,"topology":"layer2","joinSubnet":"100.65.0.0/24","primaryNetwork":true`), func(c *NetConf) bool {
			return len(c.Notes) == 1 && noted(c, "joinSubnet is ignored")
		}},
		{"log keys noted", conf(`,"topology":"layer2","logFile":"/var/log/x.log","logLevel":"5"`), func(c *NetConf) bool { return len(c.Notes) == 2 }},
		{"empty optional fields are absent", conf(`,"topology":"layer3","subnets":"172.31.0.0/16/24","excludeSubnets":"","reservedSubnets":"","infrastructureSubnets":"","defaultGatewayIPs":"","vlanID":0,"physicalNetworkName":"","role":"","allowPersistentIPs":false`), func(c *NetConf) bool {
			return len(c.Notes) == 0 && c.ExcludeSubnets == nil && c.ReservedSubnets == nil
		}},
		{"new form is not legacy", conf(`,"topology":"layer2"`), func(c *NetConf) bool { return !c.Legacy && c.Type == PluginType }},
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

func noted(c *NetConf, part string) bool {
	for _, n := range c.Notes {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
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
	localnet := fp(`{"cniVersion":"1.0.0","name":"phys","type":"ovn-k8s-cni-overlay","topology":"localnet"}`)
	if localnet != fp(`{"cniVersion":"1.0.0","name":"phys","type":"ovn-k8s-cni-overlay","topology":"localnet","physicalNetworkName":"phys"}`) {
		t.Error("an empty physicalNetworkName and the network name are the same network but fingerprint differently")
	}
	if localnet == fp(`{"cniVersion":"1.0.0","name":"phys","type":"ovn-k8s-cni-overlay","topology":"localnet","physicalNetworkName":"other"}`) {
		t.Error("a different physicalNetworkName has the same fingerprint")
	}
	legacy := fp(`{"cniVersion":"0.3.1","name":"n","type":"ovn-kubernetes","subnet":"10.0.0.0/24"}`)
	if legacy != fp(`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24"}`) {
		t.Error("the legacy form and its layer2 equivalent fingerprint differently")
	}
	if fp(`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.0.0.0/16"}`) !=
		fp(`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.0.0.0/16/24"}`) {
		t.Error("an omitted layer3 host prefix and its default /24 fingerprint differently")
	}
	for _, other := range []string{
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24"}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24,fd00::/64","mtu":1300}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24,fd00::/64","excludeSubnets":"10.0.0.1"}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.0.0.0/24/28,fd00::/48/64"}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24,fd00::/64","reservedSubnets":"10.0.0.0/28"}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24,fd00::/64","allowPersistentIPs":true}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"localnet","subnets":"10.0.0.0/24,fd00::/64"}`,
		`{"cniVersion":"0.3.1","name":"n","type":"ovn-k8s-cni-overlay","topology":"localnet","subnets":"10.0.0.0/24,fd00::/64","vlanID":7}`,
	} {
		if fp(other) == a {
			t.Errorf("%s has the same fingerprint as a different shape", other)
		}
	}
}

func TestFieldErrorMessage(t *testing.T) {
	_, err := Parse(conf(`,"topology":"layer2","subnets":"10.128.0.0/16","mtu":-1`))
	want := `network config field "mtu" (-1): must be between 576 and 65535; omit it to use the node's safe default, or pick a value in range`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	_, err = ParseArgs("IP=nope")
	if err == nil || !strings.HasPrefix(err.Error(), `CNI_ARGS key "IP" ("nope")`) {
		t.Errorf("CNI_ARGS error reads %v", err)
	}
	long := &FieldError{Field: "f", Value: strings.Repeat("v", 1000), Problem: "p", Fix: "x"}
	if len(long.Error()) > 200 {
		t.Errorf("a long value is echoed in full: %d bytes", len(long.Error()))
	}
}

func TestSyntaxErrorPosition(t *testing.T) {
	_, err := Parse([]byte(enhancementFlat))
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatal(err)
	}
	// The "}" after the trailing comma is on line 6, column 9 (byte 160).
	for _, want := range []string{"line 6", "column 9", "byte offset 160"} {
		if !strings.Contains(fe.Problem, want) {
			t.Errorf("problem %q does not say %q", fe.Problem, want)
		}
	}
	_, err = Parse([]byte(`{"cniVersion": x}`))
	if !errors.As(err, &fe) || strings.Contains(fe.Fix, "trailing comma") || !strings.Contains(fe.Problem, "line 1") {
		t.Errorf("non-comma syntax error: %v", err)
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
	for _, tt := range []struct{ args, field string }{
		{"IP=10.0.0.5/24,", "CNI_ARGS IP"},
		{"IP=10.0.0.5,10.0.0.5", "CNI_ARGS IP"},
		{"MAC=zz", "CNI_ARGS MAC"},
		{"MAC=00:00:00:00:00:00", "CNI_ARGS MAC"},
		{"K8S_POD_NAME=p;MAC=01:00:5e:00:00:01", "CNI_ARGS MAC"},
	} {
		_, err := ParseArgs(tt.args)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("ParseArgs(%q) = %v, want a FieldError on %s", tt.args, err, tt.field)
		}
	}
	// Malformed segments, empty values and bare IPs are tolerated.
	a, err = ParseArgs("IgnoreUnknown=1;;junk;IP=;MAC=;K8S_POD_NAME=p;IP= 10.0.0.7 ")
	if err != nil || a.PodName != "p" || a.MAC != nil || len(a.IPs) != 1 || a.IPs[0] != netip.MustParsePrefix("10.0.0.7/32") {
		t.Errorf("tolerant parse: %+v %v", a, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{specLayer2, specLayer3, enhancementFlat, `{}`, `{"cniVersion":"1.0.0","name":"n","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.0.0.0/8/30"}`,
		`{"cniVersion":"0.3.0","name":"n","plugins":[{"type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.1/24","reservedSubnets":"10.0.0.0/28","vlanID":0,"role":""}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The NAD path (list flattening, netAttachDefName) must hold up too.
		if nc, err := ParseNAD("ns/n", data); err == nil {
			checkInvariants(t, nc)
		}
		c, err := Parse(data)
		if err == nil && c.Name == "" {
			t.Fatalf("accepted a config without a name: %q", data)
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
			_ = fe.Error()
			return
		}
		checkInvariants(t, c)
		_ = c.Fingerprint()
	})
}

// checkInvariants is what the daemon relies on from an accepted config.
func checkInvariants(t *testing.T, c *NetConf) {
	t.Helper()
	if c.Topology != Layer2 && c.Topology != Layer3 && c.Topology != Localnet {
		t.Fatalf("accepted topology %q", c.Topology)
	}
	if c.Topology == Layer3 && len(c.Subnets) == 0 {
		t.Fatal("accepted layer3 without subnets")
	}
	for _, sn := range c.Subnets {
		if !sn.CIDR.IsValid() || sn.CIDR != sn.CIDR.Masked() {
			t.Fatalf("accepted subnet %v", sn.CIDR)
		}
		if (c.Topology == Layer3) != (sn.HostPrefix > sn.CIDR.Bits()) {
			t.Fatalf("subnet %v has host prefix %d on %s", sn.CIDR, sn.HostPrefix, c.Topology)
		}
	}
	if c.MTU < 0 || c.MTU > 65535 || c.VLANID < 0 || c.VLANID > 4094 {
		t.Fatalf("accepted mtu %d vlan %d", c.MTU, c.VLANID)
	}
	if c.Role != "" && c.Role != RoleSecondary {
		t.Fatalf("accepted role %q", c.Role)
	}
	for _, r := range append(append([]netip.Prefix(nil), c.ReservedSubnets...), c.ExcludeSubnets...) {
		if !insideAny(r, c.Subnets) {
			t.Fatalf("accepted range %v outside the subnets", r)
		}
	}
	if len(c.ReservedSubnets) > 0 && c.Topology == Layer3 {
		t.Fatal("accepted reservedSubnets on layer3")
	}
	if !slices.Contains(SupportedVersions, c.CNIVersion) {
		t.Fatalf("accepted cniVersion %q", c.CNIVersion)
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;IP=10.0.0.5/24,fd00::5;MAC=0a:58:0a:00:00:05")
	f.Fuzz(func(t *testing.T, s string) {
		_, err := ParseArgs(s)
		var fe *FieldError
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("error is not a FieldError: %v", err)
		}
	})
}
