package kafkasender

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAPartitionerFunctionPlacesMessagesAndItsMistakesAreTyped(t *testing.T) {
	c := cluster(t, "go-custom", 4)
	p := producer(t, c, nil)
	if err := p.SetPartitioner(func(topic string, key []byte, count int32) int32 {
		if string(key) == "nowhere" {
			return 9
		}
		return int32(len(key)) % count
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for key, want := range map[string]int32{"a": 1, "bb": 2, "ccc": 3, "dddd": 0} {
		r, err := p.Send(ctx, Message{Topic: "go-custom", Key: []byte(key), Value: []byte("v")})
		if err != nil || r.Partition != want {
			t.Fatalf("%s: partition %d, want %d (%v)", key, r.Partition, want, err)
		}
	}
	_, err := p.Send(ctx, Message{Topic: "go-custom", Key: []byte("nowhere"), Value: []byte("v")})
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Kind() != KindInvalidRecord || !strings.Contains(err.Error(), "returned 9") {
		t.Fatalf("%v", err)
	}
	if err := p.SetPartitioner(func(string, []byte, int32) int32 { return 0 }); !errors.As(err, &kerr) || kerr.Kind() != KindConfig {
		t.Fatalf("a second partitioner: %v", err)
	}
}
