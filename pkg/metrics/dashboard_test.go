package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The Grafana dashboard (docs/grafana-halo.json) queries only series halod
// exports, so renaming a metric without the dashboard fails here.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana-halo.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	m := New("dev", sources())
	m.SetScripts([]string{"chk"})
	m.ObserveCheck("TCP_CHECK", true, time.Millisecond)
	exposed := scrape(t, m)
	names := regexp.MustCompile(`\bhalo_[a-z_]+`)
	seen := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range names.FindAllString(tg.Expr, -1) {
				seen++
				if !strings.Contains(exposed, "\n"+n+"{") && !strings.Contains(exposed, "\n"+n+" ") {
					t.Errorf("panel %q queries %s, which halod does not export", p.Title, n)
				}
			}
		}
	}
	if seen < 20 {
		t.Fatalf("only %d metric references in the dashboard", seen)
	}
}
