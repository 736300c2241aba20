package kafkasender

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// parityList reads one of the core's lists in tests/parity (one item per line).
func parityList(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile("../../tests/parity/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func TestMetricsAreTheCoreList(t *testing.T) {
	p := producer(t, cluster(t, "go-parity", 1), nil)
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	names := parityList(t, "metrics.txt")
	got := make([]string, 0, len(m))
	for name := range m {
		got = append(got, name)
	}
	sort.Strings(got)
	sort.Strings(names)
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Fatalf("metrics\n%v\nexpected\n%v", got, names)
	}
}

// TestErrorKindsAreTheCoreList checks every core kind has its Kind constant (read from errors.go,
// KindQueueFull = C.KS_STATUS_QUEUE_FULL) with the core's code and name.
func TestErrorKindsAreTheCoreList(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	ast.Inspect(file, func(n ast.Node) bool {
		if spec, ok := n.(*ast.ValueSpec); ok && len(spec.Values) == 1 {
			if sel, ok := spec.Values[0].(*ast.SelectorExpr); ok && strings.HasPrefix(sel.Sel.Name, "KS_STATUS_") {
				declared[strings.ToLower(strings.TrimPrefix(sel.Sel.Name, "KS_STATUS_"))] = true
			}
		}
		return true
	})
	for _, line := range parityList(t, "error_kinds.txt") {
		code, name, _ := strings.Cut(line, " ")
		n, _ := strconv.Atoi(code)
		if !declared[name] || Kind(n).String() != name {
			t.Errorf("kind %s (%s): declared %v, Kind(%d) is %q", name, code, declared[name], n, Kind(n).String())
		}
	}
}
