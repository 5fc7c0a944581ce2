package strictjson

import "testing"

func TestUnmarshal(t *testing.T) {
	type doc struct {
		A int `json:"a"`
	}
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"exact", `{"a":1}`, true},
		{"trailing space", "{\"a\":1}\n", true},
		{"unknown field", `{"a":1,"b":2}`, false},
		{"trailing value", `{"a":1}{"a":2}`, false},
		{"trailing garbage", `{"a":1} x`, false},
		{"not json", `a`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d doc
			err := Unmarshal([]byte(tc.in), &d)
			if (err == nil) != tc.ok {
				t.Fatalf("Unmarshal(%q) = %v, want ok %v", tc.in, err, tc.ok)
			}
		})
	}
}
