// kafkasender from C++ through the RAII wrapper in kafkasender.hpp.
#include <atomic>
#include <cstdlib>
#include <iostream>

#include "kafkasender.hpp"

int main() {
  try {
    kafkasender::MockCluster cluster(1);  // or use KAFKA_BROKERS with Config::from_env()
    kafkasender::Producer producer(kafkasender::Config().set("bootstrap.servers", cluster.bootstrap_servers()));
    std::atomic<int> delivered{0};
    for (int i = 0; i < 5; i++) {
      producer.send({"kafkasender-example-cpp", "key", "value " + std::to_string(i), {{"source", "example-cpp"}}},
                    [&](const kafkasender::Report &r) {
                      if (r.delivered()) delivered++;
                      else std::cerr << "failed: " << r.error << "\n";
                    });
    }
    producer.flush(30000);
    try {
      producer.send({"bad topic", "", "x", {}}, [](const kafkasender::Report &) {});
    } catch (const kafkasender::Error &e) {
      std::cout << "rejected as expected: " << e.what() << "\n";
    }
    producer.close(10000);
    std::cout << delivered << " of 5 delivered\n";
    return delivered == 5 ? EXIT_SUCCESS : EXIT_FAILURE;
  } catch (const kafkasender::Error &e) {
    std::cerr << e.what() << "\n";
    return EXIT_FAILURE;
  }
}
