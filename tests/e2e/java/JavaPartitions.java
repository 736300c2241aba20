// The partition Apache Kafka's own Java producer picks for each key (one UTF-8 key per line on
// stdin) on a topic of N partitions (the argument): one number per line on stdout. Run from
// source with kafka-clients on the class path (tests/e2e/test_partitions_real_kafka.py).
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class JavaPartitions {
    public static void main(String[] args) throws Exception {
        int partitions = Integer.parseInt(args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder out = new StringBuilder();
        for (String key; (key = in.readLine()) != null; ) {
            out.append(BuiltInPartitioner.partitionForKey(key.getBytes(StandardCharsets.UTF_8), partitions)).append('\n');
        }
        System.out.print(out);
    }
}
