package kafkasender

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "producers.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNamedProducersOverrideTheDefaultsAndSend(t *testing.T) {
	c := cluster(t, "named", 1)
	producers, err := LoadProducers(writeFile(t, `
		[defaults]
		bootstrap.servers = "`+c.BootstrapServers()+`"
		[producers.fast]
		acks = "1"
		enable.idempotence = false
		[producers.reliable]
		acks = "all"
	`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fast, err := producers.Get("fast")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := producers.Get("fast"); again != fast {
		t.Fatal("Get makes a producer once")
	}
	reliable, err := producers.Get("reliable")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Producer{fast, reliable} {
		if _, err := p.Send(ctx, Message{Topic: "named", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	var kerr *Error
	if _, err := producers.Get("slow"); !errors.As(err, &kerr) || kerr.Kind() != KindConfig || !strings.Contains(err.Error(), "fast, reliable") {
		t.Fatalf("%v", err)
	}
	if err := producers.Close(); err != nil {
		t.Fatal(err)
	}
	if records, err := c.ReadTopic("named", 30*time.Second); err != nil || len(records) != 2 {
		t.Fatalf("%d records, %v", len(records), err)
	}
}

func TestAnInvalidProducersFileIsOneErrorListingEveryProblem(t *testing.T) {
	_, err := LoadProducers(writeFile(t, "colour = \"blue\"\n[producers.a]\nacks = \"sometimes\"\n[producers.b]\nlinger.ms = \"soon\"\n"))
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Kind() != KindConfig {
		t.Fatalf("%v", err)
	}
	for _, want := range []string{"colour", "[producers.a] acks", "[producers.b] linger.ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q not in %v", want, err)
		}
	}
}
