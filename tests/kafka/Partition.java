/*
 * Partition.java: the partition the Java Kafka client's default
 * partitioner puts a key in, computed with the broker's own jars
 * (org.apache.kafka.common.utils.Utils), for the partitioner test
 * (contract §4: partitioner = murmur2_random). A single-file program:
 *
 *   java -cp 'build/kafka/libs/*' tests/kafka/Partition.java PARTITIONS < keys
 *
 * reads one key a line (UTF-8) and prints "<partition> <key>", as the
 * producer computes it for a keyed record (BuiltInPartitioner.
 * partitionForKey: toPositive(murmur2(key bytes)) % partitions).
 */
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.utils.Utils;

public class Partition {
	public static void main(String[] args) throws Exception {
		int n = Integer.parseInt(args[0]);
		BufferedReader in = new BufferedReader(
		    new InputStreamReader(System.in, StandardCharsets.UTF_8));
		StringBuilder out = new StringBuilder();
		String key;

		while ((key = in.readLine()) != null) {
			byte[] b = key.getBytes(StandardCharsets.UTF_8);
			out.append(Utils.toPositive(Utils.murmur2(b)) % n)
			    .append(' ').append(key).append('\n');
		}
		System.out.print(out);
	}
}
