package dev.guardsdk.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * Where the post-processor puts special tokens around one text or a pair, with the token type of each part:
 * the Python runtime reads the same layout off a probe (docs/bundle.md, "From text to windows"). A prompt-tuned
 * guard's template starts with its [GUARD_PROMPT_i] virtual tokens, which are ordinary special tokens here.
 */
public final class SpecialTemplate {
  /** One part: fixed special ids, or the place of text 0 (prompt) or 1 (response). */
  public static final class Part {
    public final int[] ids;
    public final int sequence; // -1 for special tokens
    public final int typeId;

    Part(int[] ids, int sequence, int typeId) {
      this.ids = ids;
      this.sequence = sequence;
      this.typeId = typeId;
    }
  }

  public final List<Part> parts;
  /** How many special tokens the template adds. */
  public final int specials;

  private SpecialTemplate(List<Part> parts, boolean pair) throws GuardException {
    this.parts = Collections.unmodifiableList(parts);
    int n = 0;
    int[] placed = new int[2];  // how often each text (A, B) appears: exactly once each, or the layout is wrong
    for (Part p : parts) {
      n += p.sequence < 0 ? p.ids.length : 0;
      if (p.sequence >= 0) {
        placed[p.sequence]++;
      }
    }
    this.specials = n;
    if (placed[0] != 1 || placed[1] != (pair ? 1 : 0)) {
      throw new GuardException(GuardException.Reason.UNSUPPORTED_TOKENIZER,
          "tokenizer.json's post-processor does not place each text exactly once");
    }
  }

  /** The layout of {@code postProcessor} (tokenizer.json's, or null for none) for one text or a pair. */
  static SpecialTemplate of(JSONObject postProcessor, boolean pair) throws JSONException, GuardException {
    List<Part> parts = new ArrayList<>();
    if (postProcessor == null) {
      parts.add(new Part(new int[0], 0, 0));
      if (pair) {
        parts.add(new Part(new int[0], 1, 1));
      }
      return new SpecialTemplate(parts, pair);
    }
    String type = postProcessor.getString("type");
    if (type.equals("TemplateProcessing")) {
      JSONObject specials = postProcessor.getJSONObject("special_tokens");
      JSONArray items = postProcessor.getJSONArray(pair ? "pair" : "single");
      for (int i = 0; i < items.length(); i++) {
        JSONObject item = items.getJSONObject(i);
        if (item.has("SpecialToken")) {
          JSONObject s = item.getJSONObject("SpecialToken");
          JSONArray ids = specials.getJSONObject(s.getString("id")).getJSONArray("ids");
          int[] values = new int[ids.length()];
          for (int k = 0; k < values.length; k++) {
            values[k] = ids.getInt(k);
          }
          parts.add(new Part(values, -1, s.getInt("type_id")));
        } else {
          JSONObject s = item.getJSONObject("Sequence");
          parts.add(new Part(new int[0], s.getString("id").equals("A") ? 0 : 1, s.getInt("type_id")));
        }
      }
    } else if (type.equals("BertProcessing")) {
      int cls = postProcessor.getJSONArray("cls").getInt(1);
      int sep = postProcessor.getJSONArray("sep").getInt(1);
      parts.add(new Part(new int[] {cls}, -1, 0));
      parts.add(new Part(new int[0], 0, 0));
      parts.add(new Part(new int[] {sep}, -1, 0));
      if (pair) {
        parts.add(new Part(new int[0], 1, 1));
        parts.add(new Part(new int[] {sep}, -1, 1));
      }
    } else {
      throw new GuardException(GuardException.Reason.UNSUPPORTED_TOKENIZER,
          "tokenizer.json's post-processor " + type
              + " is not one this app reads (TemplateProcessing, BertProcessing)");
    }
    return new SpecialTemplate(parts, pair);
  }
}
