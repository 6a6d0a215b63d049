package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// tokenServer answers every POST /token with a token; it counts the requests.
func tokenServer(t *testing.T, token string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/token" {
			http.NotFound(w, r)
			return
		}
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, token)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestClosedLoopRoundRobin: with two nodes, connection i sends to node i mod 2
// only, and each node's requests, latency and CPU are reported beside the total.
func TestClosedLoopRoundRobin(t *testing.T) {
	a, na := tokenServer(t, "x")
	b, nb := tokenServer(t, "x")
	ua, _ := url.Parse(a.URL + "/token")
	ub, _ := url.Parse(b.URL + "/token")
	spec := newRequestSpec(ua, credentials{"c", "s"}, [][]byte{[]byte(clientCredsBody)}).onNodes([]*url.URL{ua, ub})
	self := strconv.Itoa(os.Getpid())
	st, pr := closedLoop(context.Background(), spec, 4, 50*time.Millisecond, 300*time.Millisecond, 5*time.Second, []string{self, self}, false)
	if len(st.nodes) != 2 || len(pr.Nodes) != 2 {
		t.Fatalf("%d node stats, %d node proc results, want 2 each", len(st.nodes), len(pr.Nodes))
	}
	if na.Load() == 0 || nb.Load() == 0 {
		t.Fatalf("requests: node 1 %d, node 2 %d: both must be loaded", na.Load(), nb.Load())
	}
	r := &runRecord{Mode: "closed"}
	r.fillStats(st, pr)
	if r.Errors != 0 || len(r.Nodes) != 2 {
		t.Fatalf("errors %d (%s), nodes %d", r.Errors, r.FirstError, len(r.Nodes))
	}
	var sum uint64
	for i, n := range r.Nodes {
		if n.Requests == 0 || n.RPS <= 0 || n.P50Ms <= 0 || n.P99Ms < n.P50Ms || n.CPUPct == nil || n.RSSMaxMB == nil || *n.RSSMaxMB <= 0 {
			t.Errorf("node %d: %+v", i+1, n)
		}
		sum += n.Requests
	}
	if sum != r.Requests {
		t.Errorf("nodes' requests add up to %d, the total is %d", sum, r.Requests)
	}
	// Both "nodes" are this process: the server's CPU is the sum of theirs.
	if r.ServerCPUPct == nil || r.Nodes[0].CPUPct == nil || *r.ServerCPUPct < *r.Nodes[0].CPUPct {
		t.Errorf("server CPU %v, node 1 %v", r.ServerCPUPct, r.Nodes[0].CPUPct)
	}
	var out bytes.Buffer
	printTable(&out, []*runRecord{r}, nil)
	for _, want := range []string{"node 1 (", "node 2 (", "all 2 nodes:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestNewRunStatsSplitsByNode: worker i belongs to node i mod nodes.
func TestNewRunStatsSplitsByNode(t *testing.T) {
	var ws []*workerStats
	for i := range 5 {
		w := newWorkerStats()
		w.ok = uint64(i + 1)
		w.lat.Record(time.Millisecond)
		ws = append(ws, w)
	}
	r := newRunStats(ws, 2, time.Second)
	if r.ok != 15 || len(r.nodes) != 2 || r.nodes[0].ok != 1+3+5 || r.nodes[1].ok != 2+4 {
		t.Errorf("total %d, nodes %d", r.ok, len(r.nodes))
	}
	if one := newRunStats(ws, 1, time.Second); one.nodes != nil {
		t.Errorf("one node: %d node stats, want none", len(one.nodes))
	}
}

// TestRefusesOtherAlgorithm: a running deputy that signs EdDSA is not compared
// with an ES256 floor; the tool names the algorithm to pass.
func TestRefusesOtherAlgorithm(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(`{"sub":"web-app"}`))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := tokenServer(t, tok)
	u, _ := url.Parse(srv.URL + "/token")
	if alg, err := serverSigningAlg(context.Background(), u, credentials{"c", "s"}, 5*time.Second); err != nil || alg != "EdDSA" {
		t.Fatalf("alg %q, err %v", alg, err)
	}
	var stdout, stderr bytes.Buffer
	if code := realMain(context.Background(), []string{"--url", srv.URL, "--floor-time", "0", "-d", "1"}, &stdout, &stderr, false); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr.String())
	}
	if want := "signs its access tokens with EdDSA, not --alg ES256: pass --alg EdDSA"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}

	opaque, _ := tokenServer(t, "an-opaque-token")
	if _, err := serverSigningAlg(context.Background(), mustParse(t, opaque.URL+"/token"), credentials{"c", "s"}, 5*time.Second); err == nil {
		t.Error("an opaque token: no error")
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRunningCluster loads two running "nodes" given by --url (fake token
// endpoints issuing ES256 tokens, both with this process's pid): the report
// names the cluster, spreads the connections and gives each node's share.
func TestRunningCluster(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(`{"sub":"web-app"}`))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jws.CompactSerialize()
	a, na := tokenServer(t, tok)
	b, nb := tokenServer(t, tok)
	self := strconv.Itoa(os.Getpid())
	var stdout, stderr bytes.Buffer
	args := []string{"--url", a.URL + "," + b.URL, "--pid", self + "," + self, "--scenario", "client-credentials",
		"--floor-time", "0", "--warmup", "0", "-d", "300ms", "-c", "4", "--subjects", "1"}
	if code := realMain(context.Background(), args, &stdout, &stderr, false); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"a running cluster of 2 nodes", "node 1    " + a.URL + "/token, pid " + self, "node 2    " + b.URL + "/token",
		"spread    connection i to node i mod 2", "client-credentials c=4: node 2 (" + b.URL, "all 2 nodes:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if na.Load() == 0 || nb.Load() == 0 {
		t.Errorf("requests: node 1 %d, node 2 %d", na.Load(), nb.Load())
	}
}
