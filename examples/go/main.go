// kafkasender from Go: blocking and asynchronous sends, typed errors, and a read-back. Uses
// KAFKA_BROKERS when set, otherwise an embedded mock cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	kafkasender "github.com/kafkasender/kafkasender-go"
)

func main() {
	var producer *kafkasender.Producer
	var mock *kafkasender.MockCluster
	var err error
	if os.Getenv("KAFKA_BROKERS") != "" {
		producer, err = kafkasender.FromEnv()
	} else {
		if mock, err = kafkasender.NewMockCluster(1); err != nil {
			log.Fatal(err)
		}
		defer mock.Close()
		producer, err = kafkasender.FromEnv(map[string]string{"bootstrap.servers": mock.BootstrapServers()})
	}
	if err != nil {
		log.Fatal(err) // a *kafkasender.Error of KindConfig lists every problem
	}
	defer producer.Close()

	topic := "kafkasender-example-go"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	report, err := producer.Send(ctx, kafkasender.Message{
		Topic:   topic,
		Key:     []byte("customer-7"),
		Value:   []byte(`{"total": 12}`),
		Headers: []kafkasender.Header{{Key: "source", Value: []byte("example-go")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("delivered to %s [%d] at offset %d in %v\n", report.Topic, report.Partition, report.Offset, report.Latency)

	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		err := producer.SendAsync(kafkasender.Message{Topic: topic, Value: []byte(fmt.Sprint(i))}, func(r kafkasender.DeliveryReport) {
			defer wg.Done()
			fmt.Printf("async %d: offset %d, err %v\n", i, r.Offset, r.Err)
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	wg.Wait()

	var kerr *kafkasender.Error
	if err := producer.SendAsync(kafkasender.Message{Topic: "not valid!"}, nil); errors.As(err, &kerr) {
		fmt.Printf("rejected: kind %s: %v\n", kerr.Kind(), err)
	}
	if mock != nil {
		records, err := mock.ReadTopic(topic, 30*time.Second)
		if err != nil || len(records) != 4 {
			log.Fatalf("read back %d records: %v", len(records), err)
		}
		fmt.Printf("read back %d records\n", len(records))
	}
}
