// A program built against the Go module from dist/ alone (make test-dist-go): sends to an
// embedded mock cluster and reads back what landed. Exit status 0 when all 10 messages are there.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	kafkasender "github.com/kafkasender/kafkasender-go"
)

func main() {
	cluster, err := kafkasender.NewMockCluster(1)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	if err := cluster.CreateTopic("dist", 2, 1); err != nil {
		log.Fatal(err)
	}
	producer, err := kafkasender.NewProducer(map[string]string{
		"bootstrap.servers": cluster.BootstrapServers(), "log.level": "off"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		if _, err := producer.Send(ctx, kafkasender.Message{Topic: "dist", Value: []byte("from the Go module")}); err != nil {
			log.Fatal(err)
		}
	}
	producer.Close()
	records, err := cluster.ReadTopic("dist", 30*time.Second)
	if err != nil || len(records) != 10 {
		log.Fatalf("read back %d of 10: %v", len(records), err)
	}
	fmt.Println("10 of 10 read back")
}
