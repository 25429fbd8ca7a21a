package bench

import (
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// chartPPS draws the median rate of every scenario that ran, one
// horizontal bar each, coloured by group; false when none ran (no chart:
// gonum/plot panics on an empty nominal axis).
func chartPPS(path string, res []Result) (bool, error) {
	p := plot.New()
	p.Title.Text = "Frames per second at the sink (median of the rounds, same lab, same run)"
	p.X.Label.Text = "Mpps"
	var names []string
	var rows []Result
	for _, r := range res {
		if r.Skipped == "" && r.Err == nil && len(r.Mpps) > 0 {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return false, nil
	}
	// Bottom to top in report order.
	for i := len(rows) - 1; i >= 0; i-- {
		names = append(names, rows[i].Scenario.Name)
	}
	colours := map[string]color.Color{"baseline": color.RGBA{120, 120, 120, 255}, "halo": color.RGBA{31, 119, 180, 255},
		"nftables": color.RGBA{214, 39, 40, 255}, "kernel": color.RGBA{255, 127, 14, 255}}
	w := vg.Points(9)
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		vals := make(plotter.Values, len(rows))
		vals[len(rows)-1-i] = r.Median()
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return false, err
		}
		b.Horizontal = true
		b.LineStyle.Width = 0
		b.Color = colours[r.Scenario.Group]
		p.Add(b)
	}
	p.NominalY(names...)
	h := vg.Length(len(rows))*vg.Points(16) + vg.Points(80)
	return true, p.Save(8*vg.Inch, h, path)
}

// chartFailover draws the failover medians of halod and keepalived.
func chartFailover(path string, ms map[string]float64) error {
	var keys []string
	for k := range ms {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	p := plot.New()
	p.Title.Text = "Failover: master SIGKILL → VIP answering (median ms)"
	p.Y.Label.Text = "ms"
	vals := make(plotter.Values, len(keys))
	for i, k := range keys {
		vals[i] = ms[k]
	}
	b, err := plotter.NewBarChart(vals, vg.Points(30))
	if err != nil {
		return err
	}
	b.Color = color.RGBA{31, 119, 180, 255}
	p.Add(b)
	p.NominalX(keys...)
	return p.Save(6*vg.Inch, 4*vg.Inch, path)
}
