package bpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"
)

// TestDecodeEventSizes: exec records are whole events; network records stop
// before exe (the kernel reserves less for them) and decode the same; a
// record shorter than that is an error.
func TestDecodeEventSizes(t *testing.T) {
	r := networkEvent{Kind: uint32(KindConnect), Cgid: 7, Pid: 42, Family: 2, Proto: protoTCP, Dport: 443}
	copy(r.Daddr[:], []byte{10, 0, 0, 9})
	for i, c := range "curl" {
		r.Comm[i] = int8(c)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, &r); err != nil {
		t.Fatal(err)
	}
	whole := buf.Bytes()
	short := whole[:unsafe.Offsetof(r.Exe)]
	for name, raw := range map[string][]byte{"whole": whole, "network": short} {
		ev, err := decodeEvent(raw)
		if err != nil {
			t.Fatalf("%s record: %v", name, err)
		}
		if ev.Kind != KindConnect || ev.CgroupID != 7 || ev.PID != 42 || ev.Comm != "curl" || ev.Exe != "" ||
			ev.Protocol != "TCP" || ev.Dst != netip.MustParseAddrPort("10.0.0.9:443") {
			t.Fatalf("%s record decoded as %+v", name, ev)
		}
	}
	if _, err := decodeEvent(short[:len(short)-1]); err == nil {
		t.Fatal("a truncated record decoded")
	}
	if len(short) > len(whole)/3 {
		t.Fatalf("network records are %d bytes of %d: want at most a third", len(short), len(whole))
	}
}

// TestDecodeNamedConnect: a named connect record runs to the end of exe,
// which holds the name: it decodes as DNSName, and its deviation key holds
// the name's hash.
func TestDecodeNamedConnect(t *testing.T) {
	r := networkEvent{Kind: uint32(KindConnect), Flags: evDeviation | evNamed, Family: 2, Proto: protoTCP, Dport: 443}
	for i, c := range "api.example.com" {
		r.Exe[i] = int8(c)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, &r); err != nil {
		t.Fatal(err)
	}
	ev, err := decodeEvent(buf.Bytes()[:unsafe.Offsetof(r.OldEuid)])
	if err != nil {
		t.Fatal(err)
	}
	if ev.DNSName != "api.example.com" || ev.Exe != "" || ev.Key.k.Name != dnsNameHash("api.example.com") || ev.Key.k.Name == 0 {
		t.Fatalf("decoded as %+v", ev)
	}
	r.Flags = evDeviation
	other := deviationKey(&r)
	if other == ev.Key {
		t.Fatal("an unnamed connect has the named one's deviation key")
	}
}
