package bench

import (
	"math"
	"sort"
)

// Median of xs (the mean of the middle two for an even count); NaN when
// empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Spread is (max-min)/median: how far apart the runs were.
func Spread(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	m := Median(xs)
	if m == 0 {
		return math.NaN()
	}
	return (hi - lo) / m
}

// MinMax of xs.
func MinMax(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

// Ratio is a/b, NaN when either is missing.
func Ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// PairedRatio is the median of a[i]/b[i] over the rounds both have: each
// round ran every scenario back to back, so a round's ratio compares
// figures taken under the same load.
func PairedRatio(a, b []float64) float64 {
	var rs []float64
	for i := 0; i < len(a) && i < len(b); i++ {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	return Median(rs)
}
