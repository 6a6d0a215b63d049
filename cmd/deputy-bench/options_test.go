package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Start || o.URL != "" || o.Alg != "ES256" || !slices.Equal(o.Conns, []int{16, 64}) ||
		o.Duration != 15*time.Second || o.Warmup != 2*time.Second || o.Subjects != 1000 || o.Rate != 0 ||
		!slices.Equal(o.Scenarios, allScenarios) || o.FloorTime != 2*time.Second {
		t.Errorf("defaults: %+v", o)
	}
	if o.SubjectCli != (credentials{"web-app", "web-app-secret"}) || o.ExchangeCli != (credentials{"api1", "api1-secret"}) {
		t.Errorf("clients: %+v %+v", o.SubjectCli, o.ExchangeCli)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseOptions(strings.Fields("--deputy /tmp/deputy --server-cpus 1 --client-cpus 0 -c 16,64,4 -d 15 --warmup 500ms "+
		"--scenario exchange-same,client-credentials,exchange-same --rate 1000 --alg EdDSA --subjects 50 --json /tmp/x.jsonl "+
		"--exchange-client svc:s3cr:et"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Deputy != "/tmp/deputy" || o.ServerCPUs != "1" || o.ClientCPUs != "0" || !slices.Equal(o.Conns, []int{16, 64, 4}) {
		t.Errorf("%+v", o)
	}
	if o.Duration != 15*time.Second || o.Warmup != 500*time.Millisecond || o.Rate != 1000 || o.Alg != "EdDSA" || o.Subjects != 50 {
		t.Errorf("%+v", o)
	}
	if !slices.Equal(o.Scenarios, []string{"exchange-same", "client-credentials"}) {
		t.Errorf("scenarios %v", o.Scenarios)
	}
	if o.DPoPMaxAge != time.Minute || o.MaxProofs != 400_000 {
		t.Errorf("dpop max age %v, max proofs %d", o.DPoPMaxAge, o.MaxProofs)
	}
	if o.ExchangeCli != (credentials{"svc", "s3cr:et"}) {
		t.Errorf("exchange client %+v", o.ExchangeCli)
	}
	o, err = parseOptions([]string{"--url", "http://127.0.0.1:8080/", "--pid", "42", "-d", "2.5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Start || o.URL != "http://127.0.0.1:8080" || o.PID != 42 || o.Duration != 2500*time.Millisecond || o.Nodes != 1 {
		t.Errorf("%+v", o)
	}
	o, err = parseOptions([]string{"--url", "http://127.0.0.1:8080/,http://127.0.0.1:8081", "--pid", "42,43"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.URL != "http://127.0.0.1:8080" || !slices.Equal(o.URLs, []string{"http://127.0.0.1:8080", "http://127.0.0.1:8081"}) ||
		o.Nodes != 2 || !slices.Equal(o.PIDs, []int{42, 43}) || o.PID != 42 {
		t.Errorf("a cluster by --url: %+v", o)
	}
	for _, dsn := range []string{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "postgres://localhost/x", "host=/var/run/postgresql dbname=x", "postgres://[::1]:5432/x"} {
		o, err = parseOptions([]string{"--postgres", dsn, "--nodes", "2", "--node-cpus", "0,1"}, io.Discard)
		if err != nil {
			t.Errorf("%s: %v", dsn, err)
			continue
		}
		if !o.Start || o.Postgres != dsn || o.Nodes != 2 || !slices.Equal(o.NodeCPUs, []string{"0", "1"}) {
			t.Errorf("two nodes on PostgreSQL: %+v", o)
		}
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseOptions([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"Examples:", "go build -o /tmp/deputy ./cmd/deputy", "--server-cpus 1 --client-cpus 0", "exchange-distinct", "coordinated", "-rate"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestRefusesNonLoopback: only http://127.0.0.1:PORT may be loaded.
func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{
		"http://localhost:8080",
		"http://10.0.0.1:8080",
		"http://127.0.0.2:8080",
		"http://[::1]:8080",
		"http://0.0.0.0:8080",
		"http://example.com:80",
		"http://127.0.0.1.example.com:8080",
		"https://127.0.0.1:8443",
		"http://127.0.0.1",
		"http://127.0.0.1:0",
		"http://127.0.0.1:99999",
		"http://user:pw@127.0.0.1:8080",
		"http://127.0.0.1:8080?x=1",
		"127.0.0.1:8080",
		"ftp://127.0.0.1:21",
	} {
		_, err := parseOptions([]string{"--url", u}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--url") {
			t.Errorf("%s: err %v, want a refusal", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.0.0.1:1/", "http://127.0.0.1:8080/deputy"} {
		if _, err := parseOptions([]string{"--url", u}, io.Discard); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestRejectsBadFlags(t *testing.T) {
	for _, c := range []struct{ args, want string }{
		{"-d 301", "-d 5m1s"},
		{"-d 0", "-d 0s"},
		{"-d soon", "invalid value"},
		{"--warmup 2m", "--warmup"},
		{"-c 0", "-c 0"},
		{"-c 16,x", "invalid value"},
		{"-c 1,2,3,4,5,6,7,8,9", "-c lists 9"},
		{"--scenario exchange-fast", `"exchange-fast"`},
		{"--scenario ,", "no scenario"},
		{"--alg HS256", "--alg"},
		{"--server-cpus one", "--server-cpus"},
		{"--client-cpus 0;rm", "--client-cpus"},
		{"--rate -1", "--rate"},
		{"--subjects 0", "--subjects"},
		{"--subjects 500 --max-subjects 100", "--max-subjects"},
		{"--pid 12", "--pid is for --url"},
		{"--url http://127.0.0.1:8080 --start", "exclude"},
		{"--url http://127.0.0.1:8080 --server-cpus 1", "--deputy, --server-cpus"},
		{"--url http://127.0.0.1:8080 --postgres postgres://127.0.0.1/x", "are for --start"},
		{"--url http://127.0.0.1:8080,http://127.0.0.1:8081 --pid 1", "--pid lists 1 process(es) for 2 URL(s)"},
		{"--url http://127.0.0.1:8080,http://10.0.0.1:8081", `refusing to load "10.0.0.1"`},
		{"--url http://127.0.0.1:8080 --nodes 2", "--nodes 2 with 1 URL(s)"},
		{"--pid 0 --url http://127.0.0.1:8080", "--pid 0 is not"},
		{"--nodes 2", "--nodes 2 needs --postgres"},
		{"--nodes 0", "--nodes 0 is not"},
		{"--nodes 9 --postgres postgres://127.0.0.1/x", "--nodes 9 is not"},
		{"--postgres postgres://db.internal:5432/x", `refusing host "db.internal"`},
		{"--postgres host=10.1.1.1", `refusing host "10.1.1.1"`},
		{"--postgres postgres://127.0.0.1,db.internal/x", `refusing host "db.internal"`},
		{"--postgres postgres://127.0.0.1/x --nodes 2 --node-cpus 0", "--node-cpus lists 1 CPU(s) for 2 node(s)"},
		{"--postgres postgres://127.0.0.1/x --nodes 2 --node-cpus 0,1 --server-cpus 1", "exclude each other"},
		{"--postgres postgres://127.0.0.1/x --nodes 2 --node-cpus 0,1-2", `"1-2" is not a CPU number`},
		{"--exchange-client nosecret", "id:secret"},
		{"--timeout 0", "--timeout"},
		{"--floor-only --floor-time 0", "--floor-only"},
		{"--dpop-max-age 0", "--dpop-max-age"},
		{"--dpop-max-age 1500ms", "--dpop-max-age"},
		{"--max-proofs -1", "--max-proofs"},
		{"extra", "unexpected argument"},
	} {
		_, err := parseOptions(strings.Fields(c.args), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

// TestRealMainRefuses: a refused command line exits 2 before anything is
// started or sent.
func TestRealMainRefuses(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := realMain(context.Background(), []string{"--url", "http://192.168.1.1:8080"}, &stdout, &stderr, false); code != 2 {
		t.Errorf("exit %d, stderr %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "only 127.0.0.1") || stdout.Len() != 0 {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

func TestDeputyConfigUsesClients(t *testing.T) {
	o, err := parseOptions(strings.Fields("--cc-client batch:bs --subject-client web:ws --audience https://ledger.example"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := deputyConfig("http://127.0.0.1:9999", "127.0.0.1:9999", "sqlite", "/tmp/d.db", o)
	// A second node of a cluster: the first one's issuer, its own listen.
	node2 := deputyConfig("http://127.0.0.1:9999", "127.0.0.1:9998", "postgres", "postgres://127.0.0.1/x?search_path=s", o)
	for _, want := range []string{`issuer: "http://127.0.0.1:9999"`, `listen: "127.0.0.1:9998"`, `storage: {driver: postgres, dsn: "postgres://127.0.0.1/x?search_path=s"}`} {
		if !strings.Contains(node2, want) {
			t.Errorf("second node's configuration lacks %q:\n%s", want, node2)
		}
	}
	for _, want := range []string{
		`issuer: "http://127.0.0.1:9999"`, `listen: "127.0.0.1:9999"`, `signing: {algorithm: ES256}`, `storage: {driver: sqlite, dsn: "/tmp/d.db"}`,
		`- id: "web"`, `secret: "ws"`, `may_act: ["api1"]`, `- id: "batch"`, `audiences: ["https://ledger.example"]`,
		`urn:ietf:params:oauth:grant-type:token-exchange`, `mode: delegation`, `dpop: {max_age: 1m0s}`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("configuration lacks %q:\n%s", want, cfg)
		}
	}
}
