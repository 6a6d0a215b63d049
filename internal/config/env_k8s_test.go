package config

import (
	"slices"
	"testing"
)

// TestEnvKubernetesServiceLinks: the variables Kubernetes puts into every pod of a
// namespace for a Service named deputy (and deputy-…) are not configuration and do
// not stop deputy from starting; other unknown DEPUTY_ names still do.
func TestEnvKubernetesServiceLinks(t *testing.T) {
	// What the kubelet sets for `kind: Service, name: deputy` with a port named
	// http (8080/TCP) and one named metrics-port (9090/TCP), and for a Service
	// deputy-postgres (5432/TCP, unnamed).
	k8s := []string{
		"DEPUTY_SERVICE_HOST=10.96.12.34",
		"DEPUTY_SERVICE_PORT=8080",
		"DEPUTY_SERVICE_PORT_HTTP=8080",
		"DEPUTY_SERVICE_PORT_METRICS_PORT=9090",
		"DEPUTY_PORT=tcp://10.96.12.34:8080",
		"DEPUTY_PORT_8080_TCP=tcp://10.96.12.34:8080",
		"DEPUTY_PORT_8080_TCP_PROTO=tcp",
		"DEPUTY_PORT_8080_TCP_PORT=8080",
		"DEPUTY_PORT_8080_TCP_ADDR=10.96.12.34",
		"DEPUTY_PORT_9090_TCP=tcp://10.96.12.34:9090",
		"DEPUTY_PORT_9090_TCP_PROTO=tcp",
		"DEPUTY_PORT_9090_TCP_PORT=9090",
		"DEPUTY_PORT_9090_TCP_ADDR=10.96.12.34",
		"DEPUTY_POSTGRES_SERVICE_HOST=10.96.0.7",
		"DEPUTY_POSTGRES_SERVICE_PORT=5432",
		"DEPUTY_POSTGRES_PORT=tcp://10.96.0.7:5432",
		"DEPUTY_POSTGRES_PORT_5432_TCP=tcp://10.96.0.7:5432",
		"DEPUTY_POSTGRES_PORT_5432_TCP_PROTO=tcp",
		"DEPUTY_POSTGRES_PORT_5432_TCP_PORT=5432",
		"DEPUTY_POSTGRES_PORT_5432_TCP_ADDR=10.96.0.7",
		"DEPUTY_PORT_53_UDP_ADDR=fd00::a",
		"DEPUTY_PORT_53_UDP=udp://[fd00::a]:53",
		"DEPUTY_PORT_36412_SCTP_PROTO=sctp",
	}
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{name: "ok/service-links-ignored", env: append(slices.Clone(k8s), "DEPUTY_ISSUER=https://auth.example.com")},
		{
			name: "fail/not-a-service-link-value",
			env:  []string{"DEPUTY_LISTEN_PORT=8080", "DEPUTY_SERVICE_HOST=auth.example.com", "DEPUTY_PORT=8080", "DEPUTY_PORT_8080_TCP_PROTO=http"},
			want: []string{
				"$DEPUTY_LISTEN_PORT: names no configuration key",
				"$DEPUTY_SERVICE_HOST: names no configuration key",
				"$DEPUTY_PORT: names no configuration key",
				"$DEPUTY_PORT_8080_TCP_PROTO: names no configuration key",
			},
		},
		{
			name: "fail/typo-still-an-error",
			env:  append(slices.Clone(k8s), "DEPUTY_ISSUR=https://auth.example.com"),
			want: []string{"$DEPUTY_ISSUR: names no configuration key; did you mean DEPUTY_ISSUER?"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, "issuer: https://auth.example.com\n"), tt.env)
			var got []string
			for _, p := range problems(t, err) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Load problems:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}
