package robson;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.URI;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.CreateFlag;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.security.AccessControlException;
import org.apache.hadoop.util.Progressable;

/**
 * The local file system of the SQL endpoint: reads only under the lake and Spark's own
 * directories, writes only under Spark's own directories (never the lake).
 *
 * Roots are comma-separated absolute paths in {@code robson.fs.readable} (read only)
 * and {@code robson.fs.writable} (read and write). Installed with
 * {@code spark.hadoop.fs.file.impl=robson.ConfinedLocalFileSystem}, it makes the lake
 * read-only for every client of the endpoint, whatever it sends: SQL, DataFrame writes.
 */
public class ConfinedLocalFileSystem extends LocalFileSystem {
  private List<String> readable = new ArrayList<>();
  private List<String> writable = new ArrayList<>();

  @Override
  public void initialize(URI name, Configuration conf) throws IOException {
    super.initialize(name, conf);
    readable = roots(conf.get("robson.fs.readable", ""));
    writable = roots(conf.get("robson.fs.writable", ""));
  }

  private static List<String> roots(String csv) {
    List<String> out = new ArrayList<>();
    for (String root : csv.split(",")) {
      String path = root.trim();
      if (path.startsWith("file:")) {
        path = URI.create(path).getPath();
      }
      path = java.nio.file.Paths.get(path.isEmpty() ? "/nonexistent" : path).normalize().toString();
      if (!root.trim().isEmpty()) {
        out.add(path.endsWith("/") && path.length() > 1 ? path.substring(0, path.length() - 1) : path);
      }
    }
    return out;
  }

  private String local(Path path) {
    String raw = makeQualified(path).toUri().getPath();
    return java.nio.file.Paths.get(raw).normalize().toString();
  }

  private static boolean under(String path, List<String> roots) {
    for (String root : roots) {
      if (path.equals(root) || path.startsWith(root.equals("/") ? "/" : root + "/")) {
        return true;
      }
    }
    return false;
  }

  private void checkRead(Path path) throws IOException {
    String local = local(path);
    if (!under(local, readable) && !under(local, writable)) {
      throw new AccessControlException("robson SQL endpoint: " + local + " is outside the lake");
    }
  }

  private void checkWrite(Path path) throws IOException {
    String local = local(path);
    if (!under(local, writable)) {
      throw new AccessControlException("robson SQL endpoint: the lake is read-only (" + local + ")");
    }
  }

  @Override
  public FSDataInputStream open(Path f, int bufferSize) throws IOException {
    checkRead(f);
    return super.open(f, bufferSize);
  }

  @Override
  public FileStatus[] listStatus(Path f) throws IOException {
    checkRead(f);
    return super.listStatus(f);
  }

  @Override
  public FileStatus getFileStatus(Path f) throws IOException {
    checkRead(f);
    return super.getFileStatus(f);
  }

  @Override
  public FSDataOutputStream create(Path f, FsPermission permission, boolean overwrite,
      int bufferSize, short replication, long blockSize, Progressable progress)
      throws IOException {
    checkWrite(f);
    return super.create(f, permission, overwrite, bufferSize, replication, blockSize, progress);
  }

  @Override
  public FSDataOutputStream createNonRecursive(Path f, FsPermission permission,
      EnumSet<CreateFlag> flags, int bufferSize, short replication, long blockSize,
      Progressable progress) throws IOException {
    checkWrite(f);
    return super.createNonRecursive(f, permission, flags, bufferSize, replication, blockSize,
        progress);
  }

  @Override
  public FSDataOutputStream createNonRecursive(Path f, FsPermission permission,
      boolean overwrite, int bufferSize, short replication, long blockSize,
      Progressable progress) throws IOException {
    checkWrite(f);
    return super.createNonRecursive(f, permission, overwrite, bufferSize, replication,
        blockSize, progress);
  }

  @Override
  public FSDataOutputStream append(Path f, int bufferSize, Progressable progress)
      throws IOException {
    checkWrite(f);
    return super.append(f, bufferSize, progress);
  }

  @Override
  public boolean rename(Path src, Path dst) throws IOException {
    checkWrite(src);
    checkWrite(dst);
    return super.rename(src, dst);
  }

  @Override
  public boolean delete(Path f, boolean recursive) throws IOException {
    checkWrite(f);
    return super.delete(f, recursive);
  }

  @Override
  public boolean mkdirs(Path f) throws IOException {
    // ChecksumFileSystem sends this one straight to the raw file system.
    checkWrite(f);
    return super.mkdirs(f);
  }

  @Override
  public boolean mkdirs(Path f, FsPermission permission) throws IOException {
    checkWrite(f);
    return super.mkdirs(f, permission);
  }

  @Override
  public void copyFromLocalFile(boolean delSrc, boolean overwrite, Path src, Path dst)
      throws IOException {
    checkRead(src);
    checkWrite(dst);
    super.copyFromLocalFile(delSrc, overwrite, src, dst);
  }

  @Override
  public boolean truncate(Path f, long newLength) throws IOException {
    checkWrite(f);
    return super.truncate(f, newLength);
  }

  @Override
  public void setPermission(Path p, FsPermission permission) throws IOException {
    checkWrite(p);
    super.setPermission(p, permission);
  }

  @Override
  public void setOwner(Path p, String username, String groupname) throws IOException {
    checkWrite(p);
    super.setOwner(p, username, groupname);
  }

  @Override
  public void setTimes(Path p, long mtime, long atime) throws IOException {
    checkWrite(p);
    super.setTimes(p, mtime, atime);
  }

  @Override
  public boolean setReplication(Path src, short replication) throws IOException {
    checkWrite(src);
    return super.setReplication(src, replication);
  }
}
