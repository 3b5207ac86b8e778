package main

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "500000": 500000, "4G": 4e9, "4GB": 4e9, "4GiB": 4 << 30, "1.5T": 1.5e12,
		"500M": 500e6, "64k": 64e3, " 2 mib ": 2 << 20, "10B": 10,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1", "4X", "1e30", "4 G B", "1.2.3"} {
		if got, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, got)
		}
	}
}
