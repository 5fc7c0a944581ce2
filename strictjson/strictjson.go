// Package strictjson decodes signed and recorded documents strictly: an
// unknown field or trailing data is an error, never ignored, so that two
// readers cannot see different documents in the same bytes.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Unmarshal decodes exactly one JSON value from b into v, refusing fields
// v does not have and anything after the value.
func Unmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}
