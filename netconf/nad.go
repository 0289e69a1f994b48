package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ErrNotOurs marks a NetworkAttachmentDefinition whose config is for
// another plugin: not an error of the NAD, just none of this plugin's
// business.
var ErrNotOurs = errors.New("config is not for plugin type " + PluginType)

// ours reports whether a plugin config's type is served by this plugin.
func ours(typ string) bool { return typ == PluginType || typ == legacyPluginType }

// Flatten returns the plugin config this plugin receives for a NAD's
// spec.config, which may be a single plugin config or a list with
// "plugins". For a list it does what libcni does for each plugin it calls
// (Multus included): the list's "name" and "cniVersion" replace the
// plugin's own. Exactly one plugin of the list must be this plugin's.
func Flatten(config []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(config, &top); err != nil {
		return nil, syntaxError(config, err)
	}
	list, isList := top["plugins"]
	if !isList {
		if !ours(typeOf(top)) {
			return nil, ErrNotOurs
		}
		return config, nil
	}
	var plugins []map[string]json.RawMessage
	if err := json.Unmarshal(list, &plugins); err != nil {
		return nil, fieldErr("plugins", truncate(string(list)), "must be a list of plugin configs", "write \"plugins\": [{\"type\": \""+PluginType+"\", ...}]")
	}
	if len(plugins) == 0 {
		return nil, fieldErr("plugins", "[]", "is empty", "list this plugin's config in it, or write the config without \"plugins\"")
	}
	var mine map[string]json.RawMessage
	for i, p := range plugins {
		if !ours(typeOf(p)) {
			continue
		}
		if mine != nil {
			return nil, fieldErr("plugins", "", fmt.Sprintf("lists plugin type %s more than once (again at index %d)", PluginType, i), "attach one secondary network per NAD")
		}
		mine = p
	}
	if mine == nil {
		return nil, ErrNotOurs
	}
	for _, key := range []string{"name", "cniVersion"} {
		if v, ok := top[key]; ok {
			mine[key] = v
		} else {
			delete(mine, key)
		}
	}
	return json.Marshal(mine)
}

func typeOf(conf map[string]json.RawMessage) string {
	var t string
	_ = json.Unmarshal(conf["type"], &t)
	return t
}

// ParseNAD parses the spec.config of the NetworkAttachmentDefinition
// namespace/name (key) as this plugin will receive it, and checks that
// netAttachDefName, where given, names that NAD. A NAD without
// netAttachDefName gets its own name.
func ParseNAD(key string, config []byte) (*NetConf, error) {
	flat, err := Flatten(config)
	if err != nil {
		return nil, err
	}
	c, err := Parse(flat)
	if err != nil {
		return nil, err
	}
	switch c.NADName {
	case "":
		c.NADName = key
	case key:
	default:
		return nil, &NADNameMismatchError{NAD: key, Conf: c}
	}
	return c, nil
}

// NADNameMismatchError is a NAD whose netAttachDefName names another NAD.
// Conf is the parsed config, so the validator can tell a pod whose config
// claims the other name where it really comes from.
type NADNameMismatchError struct {
	NAD  string
	Conf *NetConf
}

func (e *NADNameMismatchError) Error() string {
	return fieldErr("netAttachDefName", strconv.Quote(e.Conf.NADName), "names another NetworkAttachmentDefinition than the one it is in, "+e.NAD,
		fmt.Sprintf("set \"netAttachDefName\": %q", e.NAD)).Error()
}
