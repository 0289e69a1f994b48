package ovn

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/ovn-org/libovsdb/model"
)

// Columns returns pointers to every column field of m, for a monitor that
// asks for exactly the model's columns. A monitor without a column list
// asks for every column of the server's schema, and a server newer than the
// model sends columns the model has no field for, which libovsdb's cache
// fails to apply. Listing the model's columns keeps a newer OVN harmless.
func Columns(m model.Model) []any {
	v := reflect.ValueOf(m).Elem()
	var fields []any
	for i := 0; i < v.NumField(); i++ {
		tag := v.Type().Field(i).Tag.Get("ovsdb")
		if tag == "" || tag == "_uuid" {
			continue
		}
		fields = append(fields, v.Field(i).Addr().Interface())
	}
	return fields
}

// OldestSupported is the oldest OVN release whose schemas hold every
// column the models use (schemas/README.md).
const OldestSupported = "OVN 23.03"

// explainSchema turns libovsdb's model validation failure into what an
// operator can act on: the server's schema lacks a column or table the
// daemon writes, i.e. OVN is older than the oldest supported release.
func explainSchema(db string, err error) error {
	if err == nil || !strings.Contains(err.Error(), "does not exist in schema") {
		return err
	}
	return fmt.Errorf("the %s schema lacks a table or column ovn-overlay uses; it needs %s or newer (upgrade OVN, or use an ovn-overlay release built for it): %w", db, OldestSupported, err)
}
