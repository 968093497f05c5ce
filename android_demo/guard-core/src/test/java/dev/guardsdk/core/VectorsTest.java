package dev.guardsdk.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Parity with the Python runtime: every case of every vectors file that `guard-sdk android vectors` wrote (the
 * folder named by -Dguard.vectors) must give the same token ids, windows and masks exactly, and the same
 * P(unsafe) and verdict from the logits the Python side recorded.
 */
class VectorsTest {
  static File vectorsDir() {
    String dir = System.getProperty("guard.vectors");
    assertTrue(dir != null && new File(dir).isDirectory(),
        "-Dguard.vectors must name a folder of `guard-sdk android vectors` files, got " + dir);
    return new File(dir);
  }

  @TestFactory
  List<DynamicTest> everyCaseMatchesPython() throws Exception {
    File[] files = vectorsDir().listFiles((d, name) -> name.endsWith(".json"));
    assertTrue(files != null && files.length > 0, "no vectors files in " + vectorsDir());
    List<DynamicTest> tests = new ArrayList<>();
    for (File file : files) {
      JSONObject vectors = new JSONObject(read(file));
      assertEquals("guard-sdk test vectors", vectors.getString("format"));
      File bundle = new File(vectors.getJSONObject("bundle").getString("path"));
      Manifest manifest = Manifest.read(bundle);
      WordPieceTokenizer tokenizer = WordPieceTokenizer.parse(manifest.tokenizer.verifiedBytes(bundle));
      TextEncoder encoder = new TextEncoder(tokenizer, manifest);
      JSONArray cases = vectors.getJSONArray("cases");
      for (int i = 0; i < cases.length(); i++) {
        JSONObject c = cases.getJSONObject(i);
        String name = file.getName() + " " + c.getString("id");
        tests.add(DynamicTest.dynamicTest(name, () -> check(vectors, c, tokenizer, encoder, manifest)));
      }
    }
    return tests;
  }

  private static void check(JSONObject vectors, JSONObject c, WordPieceTokenizer tokenizer, TextEncoder encoder,
      Manifest manifest) throws Exception {
    String prompt = c.getString("prompt");
    String response = c.isNull("response") ? null : c.getString("response");
    assertArrayEquals(ints(c.getJSONArray("prompt_ids")), tokenizer.encode(prompt), "prompt ids");
    if (response != null) {
      assertArrayEquals(ints(c.getJSONArray("response_ids")), tokenizer.encode(response), "response ids");
    }
    JSONObject views = c.getJSONObject("views");
    assertEquals(manifest.views.size(), views.length(), "declared views");
    for (String view : manifest.views) {
      JSONObject texts = views.getJSONObject(view);
      if (view.equals(TextViews.SENTENCES)) {
        JSONArray split = texts.getJSONArray("prompt");
        List<String> expectedSentences = new ArrayList<>();
        for (int i = 0; i < split.length(); i++) {
          expectedSentences.add(split.getString(i));
        }
        assertEquals(expectedSentences, TextViews.sentences(prompt), "sentences of the prompt");
        continue;
      }
      assertEquals(texts.getString("prompt"), TextViews.view(view, prompt, manifest.fold),
          view + " view of the prompt");
      if (response != null) {
        assertEquals(texts.getString("response"), TextViews.view(view, response, manifest.fold),
            view + " view of the response");
      }
    }
    List<TextEncoder.Viewed> viewed = encoder.scoredWindows(prompt, response);
    List<Window> windows = new ArrayList<>();
    String[] windowViews = new String[viewed.size()];
    for (int w = 0; w < viewed.size(); w++) {
      windows.add(viewed.get(w).window);
      windowViews[w] = viewed.get(w).view;
    }
    JSONArray expected = c.getJSONArray("windows");
    assertEquals(expected.length(), windows.size(), "windows");
    for (int w = 0; w < windows.size(); w++) {
      JSONObject e = expected.getJSONObject(w);
      assertEquals(e.getString("view"), windowViews[w], "view of window " + w);
      assertArrayEquals(longs(e.getJSONArray("input_ids")), windows.get(w).inputIds, "input_ids of window " + w);
      assertArrayEquals(longs(e.getJSONArray("token_type_ids")), windows.get(w).tokenTypeIds, "types of window " + w);
      assertArrayEquals(longs(e.getJSONArray("attention_mask")), windows.get(w).attentionMask(), "mask of window " + w);
    }
    Window.Padded padded = Window.pad(windows, manifest.padId);
    JSONObject p = c.getJSONObject("padded");
    for (int row = 0; row < windows.size(); row++) {
      assertArrayEquals(longs(p.getJSONArray("input_ids").getJSONArray(row)), padded.inputIds[row], "padded ids");
      assertArrayEquals(longs(p.getJSONArray("attention_mask").getJSONArray(row)), padded.attentionMask[row],
          "padded mask");
      assertArrayEquals(longs(p.getJSONArray("token_type_ids").getJSONArray(row)), padded.tokenTypeIds[row],
          "padded types");
    }
    JSONArray logits = c.getJSONArray("logits");
    float[][] perWindow = new float[logits.length()][];
    for (int w = 0; w < perWindow.length; w++) {
      JSONArray row = logits.getJSONArray(w);
      perWindow[w] = new float[row.length()];
      for (int k = 0; k < row.length(); k++) {
        perWindow[w][k] = (float) row.getDouble(k);
      }
      assertEquals(c.getJSONArray("window_scores").getDouble(w),
          Verdict.unsafeProbability(perWindow[w], manifest.unsafeIndex), 1e-12, "P(unsafe) of window " + w);
    }
    Verdict verdict = Verdict.of(perWindow, windowViews, manifest, manifest.threshold, Policy.NONE);
    assertEquals(c.getString("view"), verdict.view, "the view that decided");
    assertEquals(c.getDouble("score"), verdict.score, 1e-6, "score");
    assertEquals(c.getBoolean("unsafe"), verdict.unsafe, "verdict");
    assertEquals(c.getString("label"), verdict.label, "label");
    assertEquals(windows.size(), verdict.windows, "windows in the verdict");
    assertFalse(Double.isNaN(verdict.score));
    JSONObject categories = c.getJSONObject("categories");
    assertEquals(categories.length(), verdict.categories.size(), "categories");
    for (Manifest.Category k : manifest.categories) {
      assertEquals(categories.getDouble(k.name), verdict.categories.get(k.name), 1e-6, "P(" + k.name + ")");
    }
    assertEquals(strings(c.getJSONArray("violations")), verdict.violations, "violations");
    JSONArray policies = vectors.getJSONArray("policies");
    JSONArray under = c.getJSONArray("under_policies");
    for (int k = 0; k < policies.length(); k++) {
      Policy policy = Policy.parse(policies.getJSONObject(k).toString());
      policy.check(manifest);
      Verdict decided = Verdict.of(perWindow, windowViews, manifest, manifest.threshold, policy);
      JSONObject said = under.getJSONObject(k);
      assertEquals(said.getBoolean("unsafe"), decided.unsafe, "verdict under policy " + k);
      assertEquals(strings(said.getJSONArray("violations")), decided.violations, "violations under policy " + k);
    }
  }

  private static List<String> strings(JSONArray a) throws Exception {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < a.length(); i++) {
      out.add(a.getString(i));
    }
    return out;
  }

  static String read(File file) throws IOException {
    return new String(Files.readAllBytes(file.toPath()), StandardCharsets.UTF_8);
  }

  private static int[] ints(JSONArray a) throws Exception {
    int[] out = new int[a.length()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.getInt(i);
    }
    return out;
  }

  private static long[] longs(JSONArray a) throws Exception {
    long[] out = new long[a.length()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.getLong(i);
    }
    return out;
  }
}
