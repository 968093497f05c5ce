package dev.guardsdk.core;

import java.util.Arrays;
import java.util.List;

/** Model inputs of one window of one text, unpadded (a phone runs one window per call, so nothing pads). */
public final class Window {
  public final long[] inputIds;
  public final long[] tokenTypeIds;

  Window(long[] inputIds, long[] tokenTypeIds) {
    this.inputIds = inputIds;
    this.tokenTypeIds = tokenTypeIds;
  }

  public int length() {
    return inputIds.length;
  }

  /** All ones: an unpadded window attends to every token. */
  public long[] attentionMask() {
    long[] mask = new long[inputIds.length];
    Arrays.fill(mask, 1L);
    return mask;
  }

  /** Windows right-padded with {@code padId} to the longest, for a graph that takes a batch. */
  public static final class Padded {
    public final long[][] inputIds;
    public final long[][] attentionMask;
    public final long[][] tokenTypeIds;

    Padded(int rows, int width) {
      inputIds = new long[rows][width];
      attentionMask = new long[rows][width];
      tokenTypeIds = new long[rows][width];
    }
  }

  /** Pads a batch as the Python runtime's pad_batch: ids padded with padId, mask 0 and type 0 on padding. */
  public static Padded pad(List<Window> windows, int padId) {
    int width = 0;
    for (Window w : windows) {
      width = Math.max(width, w.length());
    }
    Padded out = new Padded(windows.size(), width);
    for (int row = 0; row < windows.size(); row++) {
      Window w = windows.get(row);
      Arrays.fill(out.inputIds[row], padId);
      System.arraycopy(w.inputIds, 0, out.inputIds[row], 0, w.length());
      System.arraycopy(w.tokenTypeIds, 0, out.tokenTypeIds[row], 0, w.length());
      Arrays.fill(out.attentionMask[row], 0, w.length(), 1L);
    }
    return out;
  }
}
