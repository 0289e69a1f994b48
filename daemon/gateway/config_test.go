package gateway

import (
	"flag"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/ovn"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestParseExternalValid(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     External
	}{{
		name: "the documented example",
		in:   "datacenter,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.99,next-hop=172.30.0.1",
		want: External{PhysicalNetwork: "datacenter", Pool: ovn.GatewayPool{
			Subnet: netip.MustParsePrefix("172.30.0.0/24"),
			First:  netip.MustParseAddr("172.30.0.10"), Last: netip.MustParseAddr("172.30.0.99"),
			NextHop: netip.MustParseAddr("172.30.0.1"),
		}, Prefixes: prefixes("172.30.0.0/24")},
	}, {
		name: "no next hop: no route beyond the subnet",
		in:   "dc,subnet=10.99.0.0/16,gateways=10.99.1.1-10.99.1.1",
		want: External{PhysicalNetwork: "dc", Pool: ovn.GatewayPool{
			Subnet: netip.MustParsePrefix("10.99.0.0/16"),
			First:  netip.MustParseAddr("10.99.1.1"), Last: netip.MustParseAddr("10.99.1.1"),
		}, Prefixes: prefixes("10.99.0.0/16")},
	}, {
		name: "repeated prefixes, in order, host bits dropped",
		in:   "dc,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.20,next-hop=172.30.0.1,prefix=10.0.0.0/8,prefix=192.168.7.9/16",
		want: External{PhysicalNetwork: "dc", Pool: ovn.GatewayPool{
			Subnet: netip.MustParsePrefix("172.30.0.0/24"),
			First:  netip.MustParseAddr("172.30.0.10"), Last: netip.MustParseAddr("172.30.0.20"),
			NextHop: netip.MustParseAddr("172.30.0.1"),
		}, Prefixes: prefixes("10.0.0.0/8", "192.168.0.0/16")},
	}, {
		name: "keys in any order, spaces around fields",
		in:   " dc , next-hop=172.30.0.1 , gateways=172.30.0.10-172.30.0.20, subnet=172.30.0.0/24",
		want: External{PhysicalNetwork: "dc", Pool: ovn.GatewayPool{
			Subnet: netip.MustParsePrefix("172.30.0.0/24"),
			First:  netip.MustParseAddr("172.30.0.10"), Last: netip.MustParseAddr("172.30.0.20"),
			NextHop: netip.MustParseAddr("172.30.0.1"),
		}, Prefixes: prefixes("172.30.0.0/24")},
	}, {
		name: "IPv6",
		in:   "dc6,subnet=fd00:30::/64,gateways=fd00:30::10-fd00:30::99,next-hop=fd00:30::1,prefix=fd00:99::/48",
		want: External{PhysicalNetwork: "dc6", Pool: ovn.GatewayPool{
			Subnet: netip.MustParsePrefix("fd00:30::/64"),
			First:  netip.MustParseAddr("fd00:30::10"), Last: netip.MustParseAddr("fd00:30::99"),
			NextHop: netip.MustParseAddr("fd00:30::1"),
		}, Prefixes: prefixes("fd00:99::/48")},
	}, {
		name: "IPv6, prefix defaults to the subnet",
		in:   "dc6,subnet=fd00:30::/64,gateways=fd00:30::10-fd00:30::99",
		want: External{PhysicalNetwork: "dc6", Pool: ovn.GatewayPool{
			Subnet: netip.MustParsePrefix("fd00:30::/64"),
			First:  netip.MustParseAddr("fd00:30::10"), Last: netip.MustParseAddr("fd00:30::99"),
		}, Prefixes: prefixes("fd00:30::/64")},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExternal(tt.in)
			if err != nil {
				t.Fatalf("ParseExternal(%q): %v", tt.in, err)
			}
			if got.PhysicalNetwork != tt.want.PhysicalNetwork || got.Pool != tt.want.Pool || !slices.Equal(got.Prefixes, tt.want.Prefixes) {
				t.Fatalf("ParseExternal(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseExternalInvalid(t *testing.T) {
	const ok = "subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.99"
	for _, tt := range []struct {
		name, in string
		// mention is what the error must quote: the offending key (and
		// value) or, for a missing name, what the value starts with.
		mention string
	}{
		{"empty", "", "physical network's name"},
		{"missing name", ok + ",next-hop=172.30.0.1", "physical network's name"},
		{"name is blank", " ," + ok, "physical network's name"},
		{"key without =", "dc," + ok + ",next-hop", `next-hop=""`},
		{"unknown key", "dc," + ok + ",gateway=172.30.0.1", `gateway="172.30.0.1"`},
		{"bad subnet", "dc,subnet=172.30.0.0/33,gateways=172.30.0.10-172.30.0.99", `subnet="172.30.0.0/33"`},
		{"subnet not a CIDR", "dc,subnet=172.30.0.0,gateways=172.30.0.10-172.30.0.99", `subnet="172.30.0.0"`},
		{"subnet with host bits", "dc,subnet=172.30.0.5/24,gateways=172.30.0.10-172.30.0.99", `subnet="172.30.0.5/24"`},
		{"missing subnet", "dc,gateways=172.30.0.10-172.30.0.99,next-hop=172.30.0.1", `subnet="" is missing`},
		{"missing gateways", "dc,subnet=172.30.0.0/24", `gateways=""`},
		{"gateways not a range", "dc,subnet=172.30.0.0/24,gateways=172.30.0.10", `gateways="172.30.0.10"`},
		{"gateways not addresses", "dc,subnet=172.30.0.0/24,gateways=a-b", `gateways="a-b"`},
		{"gateways outside the subnet", "dc,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.1.10", `gateways="172.30.0.10-172.30.1.10"`},
		{"gateways all outside the subnet", "dc,subnet=172.30.0.0/24,gateways=10.0.0.1-10.0.0.9", `gateways="10.0.0.1-10.0.0.9"`},
		{"gateways descending", "dc,subnet=172.30.0.0/24,gateways=172.30.0.99-172.30.0.10", `gateways="172.30.0.99-172.30.0.10"`},
		{"gateways of the other family", "dc,subnet=172.30.0.0/24,gateways=fd00::1-fd00::9", `gateways="fd00::1-fd00::9"`},
		{"next-hop not an address", "dc," + ok + ",next-hop=router", `next-hop="router"`},
		{"next-hop outside the subnet", "dc," + ok + ",next-hop=172.31.0.1", `next-hop="172.31.0.1"`},
		{"prefix default route", "dc," + ok + ",prefix=0.0.0.0/0", `prefix="0.0.0.0/0"`},
		{"prefix IPv6 default route", "dc6,subnet=fd00:30::/64,gateways=fd00:30::10-fd00:30::99,prefix=::/0", `prefix="::/0"`},
		{"prefix not a CIDR", "dc," + ok + ",prefix=10.0.0.0", `prefix="10.0.0.0"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x, err := ParseExternal(tt.in)
			if err == nil {
				t.Fatalf("ParseExternal(%q) = %+v, want an error", tt.in, x)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tt.mention) {
				t.Errorf("error %q does not mention %q", msg, tt.mention)
			}
			if !strings.Contains(msg, "write e.g. datacenter,subnet=") {
				t.Errorf("error %q has no example (write e.g. ...)", msg)
			}
			if !strings.Contains(msg, "--"+FlagName) {
				t.Errorf("error %q does not name the flag --%s", msg, FlagName)
			}
		})
	}
}

// The example every error message shows must itself parse.
func TestParseExternalExampleParses(t *testing.T) {
	_, err := ParseExternal("dc,subnet=bad")
	if err == nil {
		t.Fatal("want an error")
	}
	_, example, ok := strings.Cut(err.Error(), "write e.g. ")
	if !ok {
		t.Fatalf("no example in %q", err)
	}
	if _, err := ParseExternal(example); err != nil {
		t.Fatalf("the example %q does not parse: %v", example, err)
	}
}

func TestConfigSet(t *testing.T) {
	const (
		dc  = "datacenter,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.99,next-hop=172.30.0.1"
		lab = "lab,subnet=fd00:30::/64,gateways=fd00:30::10-fd00:30::99"
	)
	// As the daemon does: a repeatable flag.
	var c Config
	fs := flag.NewFlagSet("ovn-overlayd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&c, FlagName, "")
	if err := fs.Parse([]string{"--" + FlagName + "=" + dc, "--" + FlagName, lab}); err != nil {
		t.Fatal(err)
	}
	if got := c.Names(); !slices.Equal(got, []string{"datacenter", "lab"}) {
		t.Fatalf("Names() = %v, want [datacenter lab] (flag order)", got)
	}
	if got := c.String(); got != "datacenter lab" {
		t.Errorf("String() = %q", got)
	}
	for _, tt := range []struct {
		phys, want string
		ok         bool
	}{{"", "datacenter", true}, {"datacenter", "datacenter", true}, {"lab", "lab", true}, {"elsewhere", "", false}} {
		x, ok := c.Lookup(tt.phys)
		if ok != tt.ok || x.PhysicalNetwork != tt.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.phys, x.PhysicalNetwork, ok, tt.want, tt.ok)
		}
	}
	if x, _ := c.Lookup("lab"); x.Pool.Subnet != netip.MustParsePrefix("fd00:30::/64") {
		t.Errorf("Lookup(lab) has subnet %s", x.Pool.Subnet)
	}

	// A physical network given twice is refused, whatever the rest says;
	// so is an invalid value. Neither changes the config.
	for _, bad := range []string{
		"lab,subnet=10.1.0.0/24,gateways=10.1.0.10-10.1.0.20",
		"datacenter,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.99,next-hop=172.30.0.1",
		"other,subnet=10.1.0.0/24",
	} {
		if err := c.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	if err := c.Set("lab,subnet=10.1.0.0/24,gateways=10.1.0.10-10.1.0.20"); err == nil || !strings.Contains(err.Error(), `"lab"`) {
		t.Errorf("a duplicate's error %v does not name the physical network", err)
	}
	if got := c.Names(); !slices.Equal(got, []string{"datacenter", "lab"}) {
		t.Fatalf("after refused values Names() = %v", got)
	}

	var empty Config
	if _, ok := empty.Lookup(""); ok {
		t.Error("an empty config has a default")
	}
}

func TestPriority(t *testing.T) {
	const maxPriority = 32767 // Gateway_Chassis.priority's maximum
	chassis := []string{"chassis-a", "chassis-b", "chassis-c"}
	var ports []string
	for i := range 100 {
		ports = append(ports, "net"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+".gw")
	}
	// In range and deterministic.
	for _, c := range chassis {
		for _, p := range ports {
			pr := Priority(c, p)
			if pr < 1 || pr > maxPriority {
				t.Fatalf("Priority(%q, %q) = %d, outside 1..%d", c, p, pr, maxPriority)
			}
			if again := Priority(c, p); again != pr {
				t.Fatalf("Priority(%q, %q) = %d, then %d", c, p, pr, again)
			}
		}
	}
	// Priorities of one chassis differ across ports...
	seen := map[int]bool{}
	for _, p := range ports {
		seen[Priority(chassis[0], p)] = true
	}
	if len(seen) < 95 {
		t.Errorf("%d distinct priorities of %s over %d ports, want nearly all distinct", len(seen), chassis[0], len(ports))
	}
	// ...and so the active gateway (the highest priority) of different
	// networks lands on different chassis, each getting a fair share.
	active := map[string]int{}
	for _, p := range ports {
		best := chassis[0]
		for _, c := range chassis[1:] {
			if Priority(c, p) > Priority(best, p) {
				best = c
			}
		}
		active[best]++
	}
	t.Logf("active gateways per chassis over %d networks: %v", len(ports), active)
	for _, c := range chassis {
		if active[c] < 15 {
			t.Errorf("chassis %s is the active gateway of %d of %d networks (%v), want a fair share", c, active[c], len(ports), active)
		}
	}
	// Chassis and port are not simply concatenated: ("ab", "c") and
	// ("a", "bc") are different pairs.
	if Priority("ab", "c") == Priority("a", "bc") {
		t.Error("Priority does not separate chassis from port")
	}
}

// One flag value may hold several external networks separated by white
// space, and an empty one none: the DaemonSet passes a ConfigMap key that
// way (deploy/ovn-overlay.yaml).
func TestConfigSetFromOneValue(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
	}{
		{"", nil},
		{"   ", nil},
		{"dc,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.20", []string{"dc"}},
		{"dc,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.20\n  lab,subnet=10.9.0.0/24,gateways=10.9.0.5-10.9.0.9", []string{"dc", "lab"}},
	} {
		var c Config
		if err := c.Set(tc.value); err != nil {
			t.Errorf("Set(%q): %v", tc.value, err)
			continue
		}
		if got := c.Names(); !slices.Equal(got, tc.want) {
			t.Errorf("Set(%q) gave %v, want %v", tc.value, got, tc.want)
		}
	}
}
