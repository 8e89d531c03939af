package robson;

import java.util.regex.Pattern;

import org.apache.spark.connect.proto.ConfigRequest;
import org.apache.spark.connect.proto.ExecutePlanRequest;
import org.apache.spark.connect.proto.KeyValue;
import org.sparkproject.connect.grpc.ForwardingServerCallListener;
import org.sparkproject.connect.grpc.Metadata;
import org.sparkproject.connect.grpc.ServerCall;
import org.sparkproject.connect.grpc.ServerCallHandler;
import org.sparkproject.connect.grpc.ServerInterceptor;
import org.sparkproject.connect.grpc.Status;

/**
 * Refuse client settings other than {@code spark.sql.*}, through the config API or a SQL
 * {@code SET}: a session's settings reach its Hadoop configuration, so a client could
 * otherwise swap {@link ConfinedLocalFileSystem} for the plain one.
 */
public class SettingsGuardInterceptor implements ServerInterceptor {
  // Any SET not plainly followed by a spark.sql.* key (or -v, or a session variable) is
  // refused: comments or escaped blanks between SET and its key are refused too.
  private static final Pattern SQL_SET = Pattern.compile(
      "(?i)\\bSET\\b(?!\\s+(?:spark\\.sql\\.|-v\\b|VAR\\b|VARIABLE\\b))");

  @Override
  public <Q, R> ServerCall.Listener<Q> interceptCall(
      ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
    ServerCall.Listener<Q> delegate = next.startCall(call, headers);
    return new ForwardingServerCallListener.SimpleForwardingServerCallListener<Q>(delegate) {
      private boolean refused = false;

      @Override
      public void onMessage(Q message) {
        String why = refusal(message);
        if (why != null) {
          refused = true;
          call.close(Status.PERMISSION_DENIED.withDescription(why), new Metadata());
          return;
        }
        super.onMessage(message);
      }

      @Override
      public void onHalfClose() {
        if (!refused) {
          super.onHalfClose();
        }
      }
    };
  }

  static String refusal(Object message) {
    if (message instanceof ConfigRequest) {
      ConfigRequest.Operation op = ((ConfigRequest) message).getOperation();
      if (op.hasSet()) {
        for (KeyValue pair : op.getSet().getPairsList()) {
          if (!pair.getKey().startsWith("spark.sql.")) {
            return "robson SQL endpoint: setting " + pair.getKey() + " is not allowed";
          }
        }
      }
      if (op.hasUnset()) {
        for (String key : op.getUnset().getKeysList()) {
          if (!key.startsWith("spark.sql.")) {
            return "robson SQL endpoint: unsetting " + key + " is not allowed";
          }
        }
      }
    } else if (message instanceof ExecutePlanRequest) {
      if (SQL_SET.matcher(message.toString()).find()) {
        return "robson SQL endpoint: SET of a setting other than spark.sql.* is not allowed";
      }
    }
    return null;
  }
}
