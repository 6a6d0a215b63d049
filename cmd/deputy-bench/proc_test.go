package main

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// useFixtureProc points procRoot at testdata/proc for one test.
func useFixtureProc(t *testing.T) {
	t.Helper()
	old := procRoot
	procRoot = "testdata/proc"
	t.Cleanup(func() { procRoot = old })
}

// TestReadStat: utime and stime are fields 14 and 15, counted after the last
// ")" of the command name, which here holds spaces and parentheses.
func TestReadStat(t *testing.T) {
	useFixtureProc(t)
	st, err := readStat("4242")
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "deputy (x) ) y" || st.State != "S" || st.UTime != 1234 || st.STime != 567 {
		t.Errorf("got %+v", st)
	}
	ticks, err := cpuTicks("4242")
	if err != nil || ticks != 1801 {
		t.Errorf("cpuTicks = %d, %v; want 1801", ticks, err)
	}
	z, err := readStat("zombie")
	if err != nil || z.State != "Z" || z.UTime != 3 || z.STime != 4 {
		t.Errorf("zombie: %+v, %v", z, err)
	}
	if _, err := readStat("missing"); err == nil {
		t.Error("a missing process: no error")
	}
}

func TestParseStatRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"4242 deputy S 1 2 3",
		"4242 (deputy) S 1 2 3",
		"4242 (deputy) S 1 4242 4242 0 -1 4194560 52174 0 0 0 x 567 0",
	} {
		if st, err := parseStat([]byte(in)); err == nil {
			t.Errorf("%q: no error, got %+v", in, st)
		}
	}
}

func TestReadRSS(t *testing.T) {
	useFixtureProc(t)
	kb, err := readRSS("4242")
	if err != nil || kb != 109272 {
		t.Errorf("readRSS = %d, %v; want 109272", kb, err)
	}
	// A zombie has no VmRSS line: no memory.
	if kb, err := readRSS("zombie"); err != nil || kb != 0 {
		t.Errorf("zombie: %d, %v", kb, err)
	}
	if _, err := parseRSS([]byte("VmRSS:\t12 MB\n")); err == nil {
		t.Error("VmRSS in MB: no error")
	}
	if got := procStatusField("4242", "Cpus_allowed_list"); got != "1" {
		t.Errorf("Cpus_allowed_list = %q", got)
	}
}

func TestMachineCPU(t *testing.T) {
	useFixtureProc(t)
	m, err := readMachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	// user nice system idle iowait irq softirq steal: 1000+10+500+8000+100+0+40+50
	want := machineCPU{total: 9700, idle: 8100, steal: 50, ncpu: 2}
	if m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
}

func TestCPUPercent(t *testing.T) {
	for _, c := range []struct {
		t0, t1 uint64
		wall   time.Duration
		hz     uint64
		want   float64
	}{
		{1000, 1100, time.Second, 100, 100},        // one core busy
		{1000, 1100, 2 * time.Second, 100, 50},     // half a core
		{0, 3000, 15 * time.Second, 100, 200},      // two cores
		{0, 250, 2500 * time.Millisecond, 250, 40}, // another USER_HZ
		{5, 4, time.Second, 100, 0},                // counter went back: nothing
		{0, 100, 0, 100, 0},                        // no time
	} {
		if got := cpuPercent(c.t0, c.t1, c.wall, c.hz); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("cpuPercent(%d, %d, %v, %d) = %v, want %v", c.t0, c.t1, c.wall, c.hz, got, c.want)
		}
	}
}

func TestAuxvClockTicks(t *testing.T) {
	aux := func(pairs ...uint64) []byte {
		b := make([]byte, 8*len(pairs))
		for i, v := range pairs {
			binary.NativeEndian.PutUint64(b[8*i:], v)
		}
		return b
	}
	if got := parseAuxvClockTicks(aux(6, 4096, 17, 100, 0, 0)); got != 100 {
		t.Errorf("got %d, want 100", got)
	}
	if got := parseAuxvClockTicks(aux(6, 4096, 0, 0, 17, 100)); got != 0 {
		t.Errorf("past AT_NULL: got %d", got)
	}
	if got := parseAuxvClockTicks(aux(6)); got != 0 {
		t.Errorf("truncated: got %d", got)
	}
	if hz := clockTicks(); hz == 0 {
		t.Error("clockTicks is 0")
	}
}
