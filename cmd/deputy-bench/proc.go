package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procRoot is where /proc is read; tests point it at a fixture.
var procRoot = "/proc"

// statTimes holds what the load tool reads from /proc/<pid>/stat.
type statTimes struct {
	Comm  string
	State string
	// UTime and STime are the CPU time spent in user and kernel mode, in clock
	// ticks (USER_HZ, see [clockTicks]).
	UTime, STime uint64
}

// parseStat parses the contents of /proc/<pid>/stat (proc(5)). The command
// name (field 2) is in parentheses and may itself contain spaces and
// parentheses, so the fields are counted from its last closing parenthesis:
// state is field 3, utime field 14 and stime field 15.
func parseStat(b []byte) (statTimes, error) {
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return statTimes{}, fmt.Errorf("stat: no command name in %.60q", s)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return statTimes{}, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return statTimes{}, fmt.Errorf("stat: utime: %w", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return statTimes{}, fmt.Errorf("stat: stime: %w", err)
	}
	return statTimes{Comm: s[open+1 : end], State: f[0], UTime: u, STime: st}, nil
}

// parseRSS returns VmRSS in KiB from the contents of /proc/<pid>/status. A
// process without memory (a zombie) has no VmRSS line: 0.
func parseRSS(b []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: VmRSS %q is not \"<n> kB\"", strings.TrimSpace(rest))
		}
		return strconv.ParseUint(f[0], 10, 64)
	}
	return 0, sc.Err()
}

// parseAuxvClockTicks returns AT_CLKTCK from the contents of /proc/self/auxv
// (pairs of native-endian uint64 on 64-bit Linux), or 0 if absent.
func parseAuxvClockTicks(b []byte) uint64 {
	const atNull, atClkTck = 0, 17
	for len(b) >= 16 {
		k, v := binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:])
		b = b[16:]
		switch k {
		case atNull:
			return 0
		case atClkTck:
			return v
		}
	}
	return 0
}

var (
	clockTicksOnce sync.Once
	clockTicksVal  uint64
)

// clockTicks is USER_HZ, the unit of utime and stime: AT_CLKTCK from the
// auxiliary vector, else 100 (its value on every common Linux).
func clockTicks() uint64 {
	clockTicksOnce.Do(func() {
		clockTicksVal = 100
		if b, err := os.ReadFile(procRoot + "/self/auxv"); err == nil {
			if v := parseAuxvClockTicks(b); v > 0 {
				clockTicksVal = v
			}
		}
	})
	return clockTicksVal
}

// readStat reads /proc/<pid>/stat; pid "self" is this process.
func readStat(pid string) (statTimes, error) {
	b, err := os.ReadFile(procRoot + "/" + pid + "/stat")
	if err != nil {
		return statTimes{}, err
	}
	return parseStat(b)
}

// readRSS reads VmRSS (KiB) of /proc/<pid>/status.
func readRSS(pid string) (uint64, error) {
	b, err := os.ReadFile(procRoot + "/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	return parseRSS(b)
}

// cpuTicks is utime+stime of a process, in clock ticks.
func cpuTicks(pid string) (uint64, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	return st.UTime + st.STime, nil
}

// cpuPercent is the share of one core a process used between two readings of
// its utime+stime over wall time: 100 = one core busy the whole time.
func cpuPercent(ticks0, ticks1 uint64, wall time.Duration, hz uint64) float64 {
	if wall <= 0 || hz == 0 || ticks1 < ticks0 {
		return 0
	}
	return 100 * float64(ticks1-ticks0) / float64(hz) / wall.Seconds()
}

// machineCPU is the first line of /proc/stat: total and idle (idle+iowait) and
// steal ticks of all CPUs; ncpu counts the per-CPU lines that follow.
type machineCPU struct {
	total, idle, steal uint64
	ncpu               int
}

func parseMachineCPU(b []byte) (machineCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return machineCPU{}, fmt.Errorf("stat: first line %q is not the cpu total", line)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return machineCPU{}, fmt.Errorf("stat: cpu field %d: %w", i+1, err)
		}
		v[i] = n
	}
	var m machineCPU
	for _, n := range v {
		m.total += n
	}
	m.idle = v[3] + v[4]
	m.steal = v[7]
	for _, l := range bytes.Split(b, []byte("\n"))[1:] {
		if len(l) > 3 && string(l[:3]) == "cpu" && l[3] >= '0' && l[3] <= '9' {
			m.ncpu++
		}
	}
	return m, nil
}

func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile(procRoot + "/stat")
	if err != nil {
		return machineCPU{}, err
	}
	return parseMachineCPU(b)
}

// procWindow measures the server processes (one per node; none when pids is
// empty), this process, PostgreSQL (with pg) and the machine over one measured
// window: CPU from /proc/<pid>/stat at both ends, RSS sampled every 250 ms for
// its maximum and read once more at the end.
type procWindow struct {
	pids   []string
	start  time.Time
	t0     []uint64 // server ticks at start, per node
	okSrv  []bool
	s0     uint64 // self ticks at start
	pg0    map[string]uint64
	m0     machineCPU
	okSelf bool
	okMach bool
	stop   chan struct{}
	done   chan struct{}
	rssMax []uint64
}

func startProcWindow(pids []string, pg bool) *procWindow {
	w := &procWindow{pids: pids, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{}),
		t0: make([]uint64, len(pids)), okSrv: make([]bool, len(pids)), rssMax: make([]uint64, len(pids))}
	for i, pid := range pids {
		t, err := cpuTicks(pid)
		w.t0[i], w.okSrv[i] = t, err == nil
	}
	if t, err := cpuTicks("self"); err == nil {
		w.s0, w.okSelf = t, true
	}
	if pg {
		w.pg0 = postgresTicks()
	}
	if m, err := readMachineCPU(); err == nil {
		w.m0, w.okMach = m, true
	}
	go w.sample()
	return w
}

func (w *procWindow) sample() {
	defer close(w.done)
	if len(w.pids) == 0 {
		return
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		for i, pid := range w.pids {
			if kb, err := readRSS(pid); err == nil {
				w.rssMax[i] = max(w.rssMax[i], kb)
			}
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

// procResult is what a window measured; negative values were not measured.
// With several nodes, the server's values are their sums and Nodes has each.
type procResult struct {
	ServerCPU    float64 // % of one core
	ServerRSSMax float64 // MiB
	ServerRSSEnd float64 // MiB
	ClientCPU    float64 // % of one core
	PostgresCPU  float64 // % of one core: every postgres process this user can read
	MachineBusy  float64 // % of one core, all CPUs together
	StealPct     float64 // % of all CPU time
	Nodes        []nodeProc
}

// nodeProc is what a window measured of one node; negative: not measured.
type nodeProc struct{ CPU, RSSMax, RSSEnd float64 }

func (w *procWindow) finish() procResult {
	wall := time.Since(w.start)
	close(w.stop)
	<-w.done
	r := procResult{ServerCPU: -1, ServerRSSMax: -1, ServerRSSEnd: -1, ClientCPU: -1, PostgresCPU: -1, MachineBusy: -1, StealPct: -1}
	hz := clockTicks()
	allSrv := len(w.pids) > 0
	var sum nodeProc
	for i, pid := range w.pids {
		n := nodeProc{CPU: -1, RSSMax: -1, RSSEnd: -1}
		if w.okSrv[i] {
			if t, err := cpuTicks(pid); err == nil {
				n.CPU = cpuPercent(w.t0[i], t, wall, hz)
			}
			if kb, err := readRSS(pid); err == nil {
				n.RSSEnd = float64(kb) / 1024
				w.rssMax[i] = max(w.rssMax[i], kb)
			}
			if w.rssMax[i] > 0 {
				n.RSSMax = float64(w.rssMax[i]) / 1024
			}
		}
		if n.CPU < 0 || n.RSSMax < 0 || n.RSSEnd < 0 {
			allSrv = false
		}
		sum.CPU += n.CPU
		sum.RSSMax += n.RSSMax
		sum.RSSEnd += n.RSSEnd
		r.Nodes = append(r.Nodes, n)
	}
	if allSrv {
		r.ServerCPU, r.ServerRSSMax, r.ServerRSSEnd = sum.CPU, sum.RSSMax, sum.RSSEnd
	}
	if len(r.Nodes) == 1 {
		// One server: its values are the result's; partial values count too.
		n := r.Nodes[0]
		r.ServerCPU, r.ServerRSSMax, r.ServerRSSEnd = n.CPU, n.RSSMax, n.RSSEnd
	}
	if w.okSelf {
		if t, err := cpuTicks("self"); err == nil {
			r.ClientCPU = cpuPercent(w.s0, t, wall, hz)
		}
	}
	if len(w.pg0) > 0 {
		// Processes present at both ends: the nodes' connections are opened
		// before the window and kept. None seen (PostgreSQL in another
		// container, or its /proc hidden): not measured.
		var t0, t1 uint64
		for pid, t := range postgresTicks() {
			if s, ok := w.pg0[pid]; ok && t >= s {
				t0, t1 = t0+s, t1+t
			}
		}
		r.PostgresCPU = cpuPercent(t0, t1, wall, hz)
	}
	if w.okMach {
		if m, err := readMachineCPU(); err == nil && m.total > w.m0.total {
			tot := float64(m.total - w.m0.total)
			r.MachineBusy = 100 * (tot - float64(m.idle-w.m0.idle)) / tot * float64(max(m.ncpu, 1))
			r.StealPct = 100 * float64(m.steal-w.m0.steal) / tot
		}
	}
	return r
}
