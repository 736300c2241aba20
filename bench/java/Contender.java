// Java's Kafka client (kafka-clients, the jar scripts/kafka/fetch.sh brings) as a contender for
// `kafkasender bench --external java=PROGRAM`, under the rules at the top of
// crates/kafkasender-cli/src/bench.rs: kafkasender's default settings (idempotent, acks=all,
// linger.ms=5; Java's own partitioner hashes keys with murmur2 as kafkasender does), distinct
// 16-byte keys, one warm-up message before the clock starts, `send` with a callback.
//
// Why not kafka-tools' ProducerPerformance: in Kafka 3.9 it sends no keys and starts its clock
// before the first send, which waits for metadata and the producer id; both break the rules every
// other contender follows.
//
// Usage: Contender BOOTSTRAP TOPIC COUNT SIZE RATE   (RATE 0: as fast as it goes)
// Prints: result<TAB>java<TAB>MSG_PER_S<TAB>P50_MS<TAB>P99_MS<TAB>PEAK_RSS_KB<TAB>CPU_SECONDS

import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class Contender {
    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: Contender BOOTSTRAP TOPIC COUNT SIZE RATE");
            System.exit(2);
        }
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        byte[] payload = new byte[Integer.parseInt(args[3])];
        Arrays.fill(payload, (byte) 'x');
        double rate = Double.parseDouble(args[4]);

        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("acks", "all");
        props.put("enable.idempotence", "true");
        props.put("linger.ms", "5");
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());

        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.send(new ProducerRecord<>(topic, "warm-up".getBytes(), payload)).get();

            byte[][] keys = new byte[count][];
            for (int i = 0; i < count; i++) {
                keys[i] = ByteBuffer.allocate(16).putLong(i).put("ks-bench".getBytes()).array();
            }
            long[] latencies = new long[count];
            AtomicInteger delivered = new AtomicInteger();
            AtomicReference<Exception> failure = new AtomicReference<>();
            long started = System.nanoTime();
            for (int i = 0; i < count; i++) {
                if (rate > 0) {
                    long wait = started + (long) (i * 1e9 / rate) - System.nanoTime();
                    if (wait > 0) {
                        Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                    }
                }
                final int n = i;
                final long sentAt = System.nanoTime();
                producer.send(new ProducerRecord<>(topic, keys[i], payload), (metadata, error) -> {
                    if (error != null) {
                        failure.compareAndSet(null, error);
                    } else {
                        latencies[n] = System.nanoTime() - sentAt;
                        delivered.incrementAndGet();
                    }
                });
            }
            producer.flush();
            long finished = System.nanoTime();
            if (failure.get() != null || delivered.get() != count) {
                System.err.println(delivered.get() + " of " + count + " delivered: " + failure.get());
                System.exit(1);
            }
            Arrays.sort(latencies);
            double cpu = ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                    .getProcessCpuTime() / 1e9;
            System.out.printf("result\tjava\t%.0f\t%.3f\t%.3f\t%d\t%.3f%n",
                    count / ((finished - started) / 1e9),
                    latencies[count / 2] / 1e6,
                    latencies[(int) ((long) count * 99 / 100)] / 1e6,
                    peakRssKb(),
                    cpu);
        }
    }

    /** Peak resident set size (VmHWM) in kB, as getrusage's ru_maxrss gives the other contenders. */
    private static long peakRssKb() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return 0;
    }
}
