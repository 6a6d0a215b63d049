package condition

import "testing"

// BenchmarkEval measures one evaluation of typical conditions, on the input a
// decision builds once per request. The time-zone accessors run on cached zones
// (CEL's own load the zone on every call: about 10 µs for "Europe/Paris").
func BenchmarkEval(b *testing.B) {
	for _, src := range []string{
		`subject.claims.tenant == "bank"`,
		`size(subject.act) > 0 && subject.act[0].sub == "payments"`,
		`now.getHours("UTC") < 18`,
		`now.getHours("Europe/Paris") >= 8 && now.getHours("Europe/Paris") < 18`,
		`now.getHours("+02:00") < 18`,
	} {
		c, err := Compile(src)
		if err != nil {
			b.Fatal(err)
		}
		in := input()
		b.Run(src, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Eval(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
